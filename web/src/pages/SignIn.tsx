import { Alert, Button, Center, Paper, PasswordInput, Stack, TextInput, Title } from "@mantine/core";
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { Navigate, useLocation, useNavigate } from "react-router";

import { anonymousApi, unwrap } from "../api/client";
import { ApiError } from "../api/errors";
import { session } from "../auth/current";
import { useSession } from "../auth/useSession";

export function SignIn() {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const location = useLocation();
  const signedIn = useSession();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const from = (location.state as { from?: string } | null)?.from ?? "/inbox";

  if (signedIn && !busy) return <Navigate to={from} replace />;

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const pair = await unwrap(anonymousApi.POST("/v1/auth/login", { body: { email, password } }));
      session.signIn(pair);
      navigate(from, { replace: true });
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, "network", String(err)));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Center mih="100vh" p="md">
      <Paper component="main" withBorder shadow="sm" p="xl" w="100%" maw={400}>
        <form onSubmit={(e) => void onSubmit(e)} noValidate>
          <Stack>
            <Title order={1} size="h3">
              {t("auth.title")}
            </Title>
            {error && (
              <Alert color="red" role="alert">
                {error.message}
              </Alert>
            )}
            <TextInput
              label={t("auth.email")}
              type="email"
              autoComplete="username"
              required
              withAsterisk={false}
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
              error={error?.fieldMessage("email")}
            />
            <PasswordInput
              label={t("auth.password")}
              autoComplete="current-password"
              required
              withAsterisk={false}
              value={password}
              onChange={(e) => setPassword(e.currentTarget.value)}
              error={error?.fieldMessage("password")}
              visibilityToggleButtonProps={{ "aria-label": t("auth.showPassword") }}
            />
            <Button type="submit" loading={busy}>
              {t("auth.signIn")}
            </Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
