import { Anchor, Stack, Text } from "@mantine/core";
import { useTranslation } from "react-i18next";
import { Link } from "react-router";

export function NotFound() {
  const { t } = useTranslation();
  return (
    <Stack p="xl">
      <Text>{t("app.notFound")}</Text>
      <Anchor component={Link} to="/inbox">
        {t("app.backHome")}
      </Anchor>
    </Stack>
  );
}
