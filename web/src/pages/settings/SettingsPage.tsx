import { Stack, Text, Title } from "@mantine/core";
import { useTranslation } from "react-i18next";

export default function SettingsPage() {
  const { t } = useTranslation();
  return (
    <Stack p="md">
      <Title order={2}>{t("nav.settings")}</Title>
      <Text>{t("placeholder.comingSoon")}</Text>
    </Stack>
  );
}
