import { Stack, Tabs, Title } from "@mantine/core";
import { useTranslation } from "react-i18next";
import { Navigate, Route, Routes, useLocation, useNavigate } from "react-router";

import { ApiKeys } from "./ApiKeys";
import { Numbers } from "./Numbers";
import { Team } from "./Team";
import { Webhooks } from "./Webhooks";

const SECTIONS = ["numbers", "api-keys", "webhooks", "team"] as const;
const LABELS = {
  numbers: "settings.numbersTitle",
  "api-keys": "settings.apiKeys",
  webhooks: "settings.webhooks",
  team: "settings.team",
} as const;

export default function SettingsPage() {
  const { t } = useTranslation();
  const location = useLocation();
  const navigate = useNavigate();
  const current = SECTIONS.find((s) => location.pathname.includes(`/settings/${s}`)) ?? null;

  return (
    <Stack p="md" gap="md">
      <Title order={2}>{t("settings.title")}</Title>
      <Tabs value={current} onChange={(v) => v && navigate(`/settings/${v}`)} keepMounted={false}>
        <Tabs.List aria-label={t("settings.sections")}>
          {SECTIONS.map((s) => (
            <Tabs.Tab key={s} value={s}>
              {t(LABELS[s])}
            </Tabs.Tab>
          ))}
        </Tabs.List>
      </Tabs>
      <Routes>
        <Route index element={<Navigate to="numbers" replace />} />
        <Route path="numbers" element={<Numbers />} />
        <Route path="api-keys" element={<ApiKeys />} />
        <Route path="webhooks/*" element={<Webhooks />} />
        <Route path="team" element={<Team />} />
      </Routes>
    </Stack>
  );
}
