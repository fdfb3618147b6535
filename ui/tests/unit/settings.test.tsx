import { act, screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import i18n from "../../src/i18n";
import { callsOf, heading, start } from "./helpers";

describe("settings", () => {
  it("switching the language to English changes the screen text and the page language, and is saved", async () => {
    const { user, state } = start({ as: "m-staff", route: "settings" });
    await heading("设置");
    await screen.findByTestId("signed-in-as");
    await user.selectOptions(screen.getByLabelText("语言"), "en");
    await user.click(screen.getByRole("button", { name: "保存" }));
    await heading("Settings");
    expect(await screen.findByText("Saved.")).toBeInTheDocument();
    const nav = within(screen.getByRole("navigation", { name: "Main menu" }));
    expect(nav.getByRole("link", { name: "Dashboard" })).toBeInTheDocument();
    expect(nav.getByRole("link", { name: "Time account" })).toBeInTheDocument();
    expect(screen.getByTestId("signed-in-as")).toHaveTextContent("Signed in: 李娟");
    expect(screen.getByTestId("sync-indicator")).toHaveTextContent("Synced");
    expect(document.documentElement.lang).toBe("en");
    expect(document.title).toBe("Time Bank · Settings");
    expect(state.prefs.lang).toBe("en");
  });

  it("the font-size preference sets the root font scale", async () => {
    const { user, state } = start({ as: "m-staff", route: "settings" });
    await heading("设置");
    await screen.findByTestId("signed-in-as");
    expect(document.documentElement.style.getPropertyValue("--font-scale")).toBe("1");
    await user.selectOptions(screen.getByLabelText("字号"), "特大");
    await user.click(screen.getByRole("button", { name: "保存" }));
    await screen.findByText("已保存。");
    expect(document.documentElement.style.getPropertyValue("--font-scale")).toBe("1.5");
    expect(state.prefs.font_scale).toBe(150);
  });

  it("the saved preferences apply when the app starts: language and text size", async () => {
    start({ state: (s) => (s.prefs = { lang: "en", font_scale: 175, lock_minutes: 10 }) });
    await heading("Choose your name");
    expect(document.documentElement.style.getPropertyValue("--font-scale")).toBe("1.75");
    expect(document.documentElement.lang).toBe("en");
  });

  it("a change of language does not reload the device or subscribe to the core's events again", async () => {
    const { state } = start({ as: "m-staff", route: "dashboard" });
    await heading("数据看板");
    await screen.findByTestId("dashboard-figures");
    const n = callsOf(state, "app_info").length;
    await act(() => i18n.changeLanguage("en"));
    await heading("Dashboard");
    await new Promise((r) => setTimeout(r, 30));
    expect(callsOf(state, "app_info")).toHaveLength(n);
    expect(i18n.language).toBe("en");
  });

  it("the language names are marked with their own language", async () => {
    start({ as: "m-staff", route: "settings" });
    await heading("设置");
    expect(screen.getByRole("option", { name: "English" })).toHaveAttribute("lang", "en");
    expect(screen.getByRole("option", { name: "中文" })).toHaveAttribute("lang", "zh-CN");
  });

  it("signed out, settings are reachable from the sign-in screen and lead back to it", async () => {
    const { user } = start();
    await heading("请选择您的名字");
    await user.click(await screen.findByRole("button", { name: "设置" }));
    await heading("设置");
    expect(screen.queryByRole("navigation")).not.toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "返回登录" }));
    await heading("请选择您的名字");
  });
});
