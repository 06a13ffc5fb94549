import i18n from "i18next";
import { initReactI18next } from "react-i18next";

import en from "./en.json";

// Every user-visible string lives in a catalogue; Portuguese will be one more file beside en.json.
export const resources = { en: { translation: en } } as const;

declare module "i18next" {
  interface CustomTypeOptions {
    resources: (typeof resources)["en"];
  }
}

void i18n.use(initReactI18next).init({
  resources,
  lng: "en",
  fallbackLng: "en",
  interpolation: { escapeValue: false }, // React escapes
  returnNull: false,
});

export default i18n;
