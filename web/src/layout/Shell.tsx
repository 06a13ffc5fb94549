import { AppShell, Burger, Button, Group, NavLink, Text, Title } from "@mantine/core";
import { useDisclosure } from "@mantine/hooks";
import { IconAddressBook, IconInbox, IconSettings } from "@tabler/icons-react";
import { Suspense } from "react";
import { useTranslation } from "react-i18next";
import { NavLink as RouterLink, Outlet, useNavigate } from "react-router";

import { signOut } from "../auth/current";
import { useSession } from "../auth/useSession";
import { PageLoader } from "./PageLoader";

const LINKS = [
  { to: "/inbox", key: "nav.inbox", icon: IconInbox },
  { to: "/contacts", key: "nav.contacts", icon: IconAddressBook },
  { to: "/settings", key: "nav.settings", icon: IconSettings },
] as const;

export function Shell() {
  const { t } = useTranslation();
  const [opened, { toggle, close }] = useDisclosure();
  const signedIn = useSession();
  const navigate = useNavigate();

  const onSignOut = async () => {
    await signOut();
    navigate("/signin", { replace: true });
  };

  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 200, breakpoint: "sm", collapsed: { mobile: !opened } }}
      padding={0}
    >
      <a className="skip-link" href="#main">
        {t("app.skipToContent")}
      </a>
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger
              opened={opened}
              onClick={toggle}
              hiddenFrom="sm"
              size="sm"
              aria-label={t("nav.toggle")}
            />
            <Title order={1} size="h4">
              {t("app.name")}
            </Title>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <Text size="sm" visibleFrom="sm" c="dimmed">
              {t("auth.signedInAs", { name: signedIn?.user.full_name ?? "" })}
            </Text>
            <Button variant="default" size="xs" onClick={() => void onSignOut()}>
              {t("auth.signOut")}
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" component="nav" aria-label={t("nav.main")}>
        {LINKS.map(({ to, key, icon: Icon }) => (
          <NavLink
            key={to}
            component={RouterLink}
            to={to}
            label={t(key)}
            leftSection={<Icon size={18} aria-hidden />}
            onClick={close}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main id="main">
        <Suspense fallback={<PageLoader />}>
          <Outlet />
        </Suspense>
      </AppShell.Main>
    </AppShell>
  );
}
