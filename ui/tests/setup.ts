// Vitest setup for the UI component tests (jsdom): jest-dom matchers, the app's i18n in its
// default language, and a clean page after every test.
import "@testing-library/jest-dom/vitest";
import { cleanup } from "@testing-library/react";
import { clearMocks } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach } from "vitest";
import i18n from "../src/i18n";

beforeEach(async () => {
  await i18n.changeLanguage("zh-CN");
  window.location.hash = "";
});

afterEach(() => {
  cleanup();
  clearMocks();
  document.documentElement.removeAttribute("style");
  document.documentElement.lang = "zh-CN";
  document.title = "";
});
