import { Alert, Badge, Button, Group, PasswordInput, Select, Stack, Table, Text, TextInput } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useTranslation } from "react-i18next";

import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/errors";
import { FormModal } from "../../components/FormModal";
import type { Schemas } from "../../api/types";

type Role = NonNullable<Schemas["UserCreateIn"]["role"]>;
const ROLE_SET: Record<Role, true> = { org_admin: true, agent: true, viewer: true, super_admin: true };
// A super admin is made with `pytake create-admin`, not from here.
const ROLES = (Object.keys(ROLE_SET) as Role[]).filter((r) => r !== "super_admin");

export function Team() {
  const { t } = useTranslation();
  const client = useQueryClient();
  const users = useQuery({
    queryKey: ["users"],
    queryFn: () => unwrap(api.GET("/v1/users", { params: { query: { limit: 100 } } })),
  });
  const roleOptions = ROLES.map((r) => ({ value: r, label: t(`settings.users.roles.${r}`) }));
  const [opened, setOpened] = useState(false);
  const [form, setForm] = useState({ email: "", full_name: "", password: "", role: "agent" as Role });
  const invalidate = () => void client.invalidateQueries({ queryKey: ["users"] });
  const create = useMutation({
    mutationFn: () => unwrap(api.POST("/v1/users", { body: form })),
    onSuccess: () => {
      setOpened(false);
      setForm({ email: "", full_name: "", password: "", role: "agent" });
      invalidate();
    },
  });
  const update = useMutation({
    mutationFn: ({ id, body }: { id: string; body: Schemas["UserUpdateIn"] }) =>
      unwrap(api.PATCH("/v1/users/{user_id}", { params: { path: { user_id: id } }, body })),
    onSuccess: invalidate,
  });
  const deactivate = useMutation({
    mutationFn: (id: string) => unwrap(api.DELETE("/v1/users/{user_id}", { params: { path: { user_id: id } } })),
    onSuccess: invalidate,
  });
  const error = create.error instanceof ApiError ? create.error : null;
  const rowError = update.error ?? deactivate.error;

  return (
    <Stack gap="sm">
      <Text size="sm">{t("settings.users.intro")}</Text>
      <Group>
        <Button onClick={() => setOpened(true)}>{t("settings.users.invite")}</Button>
      </Group>
      {rowError && (
        <Alert color="red" role="alert">
          {rowError.message}
        </Alert>
      )}
      {users.data && (
        <Table.ScrollContainer minWidth={640}>
          <Table striped aria-label={t("settings.team")}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>{t("settings.name")}</Table.Th>
                <Table.Th>{t("settings.users.email")}</Table.Th>
                <Table.Th>{t("settings.users.role")}</Table.Th>
                <Table.Th>{t("settings.users.status")}</Table.Th>
                <Table.Th>{t("settings.actions")}</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {users.data.data.map((u) => (
                <Table.Tr key={u.id}>
                  <Table.Td>{u.full_name}</Table.Td>
                  <Table.Td>{u.email}</Table.Td>
                  <Table.Td>
                    {u.role === "super_admin" ? (
                      t("settings.users.roles.super_admin")
                    ) : (
                      <Select
                        size="xs"
                        aria-label={t("settings.users.roleOf", { name: u.full_name })}
                        data={roleOptions}
                        value={u.role}
                        allowDeselect={false}
                        onChange={(v) => v && update.mutate({ id: u.id, body: { role: v as Role } })}
                      />
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Badge color={u.is_active ? "teal" : "gray"} variant="light">
                      {u.is_active ? t("settings.users.active") : t("settings.users.inactive")}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    {u.is_active ? (
                      <Button
                        size="xs"
                        color="red"
                        variant="light"
                        aria-label={t("settings.users.deactivateNamed", { name: u.full_name })}
                        onClick={() => deactivate.mutate(u.id)}
                      >
                        {t("settings.users.deactivate")}
                      </Button>
                    ) : (
                      <Button size="xs" variant="light" onClick={() => update.mutate({ id: u.id, body: { is_active: true } })}>
                        {t("settings.users.reactivate")}
                      </Button>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <FormModal opened={opened} onClose={() => setOpened(false)} title={t("settings.users.invite")} error={error} onSubmit={() => create.mutate()}>
            <TextInput
              label={t("settings.name")}
              value={form.full_name}
              onChange={(e) => setForm({ ...form, full_name: e.currentTarget.value })}
              error={error?.fieldMessage("full_name")}
              data-autofocus
            />
            <TextInput
              label={t("settings.users.email")}
              type="email"
              value={form.email}
              onChange={(e) => setForm({ ...form, email: e.currentTarget.value })}
              error={error?.fieldMessage("email")}
            />
            <PasswordInput
              label={t("settings.users.password")}
              value={form.password}
              onChange={(e) => setForm({ ...form, password: e.currentTarget.value })}
              error={error?.fieldMessage("password")}
              visibilityToggleButtonProps={{ "aria-label": t("auth.showPassword") }}
            />
            <Select
              label={t("settings.users.role")}
              data={roleOptions}
              value={form.role}
              allowDeselect={false}
              onChange={(v) => v && setForm({ ...form, role: v as Role })}
              error={error?.fieldMessage("role")}
            />
            <Group justify="flex-end">
              <Button variant="default" onClick={() => setOpened(false)}>
                {t("settings.cancel")}
              </Button>
              <Button type="submit" loading={create.isPending}>
                {t("settings.users.invite")}
              </Button>
            </Group>
      </FormModal>
    </Stack>
  );
}
