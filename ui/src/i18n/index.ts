import i18n from "i18next";
import { initReactI18next } from "react-i18next";
import zh from "./zh-CN.json";
import en from "./en.json";

// zh-CN is the default; the device's preference (Settings) switches to English.
i18n.use(initReactI18next).init({
  resources: { "zh-CN": { translation: zh }, en: { translation: en } },
  lng: "zh-CN",
  fallbackLng: false,
  interpolation: { escapeValue: false },
  returnNull: false,
});

export default i18n;
