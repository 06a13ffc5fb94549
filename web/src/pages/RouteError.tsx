import { Alert, Button, Stack } from "@mantine/core";
import { useTranslation } from "react-i18next";
import { useRouteError } from "react-router";

export function RouteError() {
  const { t } = useTranslation();
  const error = useRouteError();
  const message = error instanceof Error ? error.message : String(error);
  return (
    <Stack p="xl" maw={600}>
      <Alert color="red" role="alert">
        {t("app.error", { message })}
      </Alert>
      <Button onClick={() => window.location.reload()}>{t("app.retry")}</Button>
    </Stack>
  );
}
