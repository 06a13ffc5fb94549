import { Anchor, Badge, Button, Group, Paper, Stack, TagsInput, Text, TextInput, Title } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { Link, useNavigate, useParams } from "react-router";

import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/errors";
import { FormError } from "../../components/FormModal";
import { confirmed } from "../../lib/confirm";

interface Form {
  whatsapp_id: string;
  name: string;
  email: string;
  tags: string[];
}

const EMPTY: Form = { whatsapp_id: "", name: "", email: "", tags: [] };

export function ContactEditor() {
  const { t } = useTranslation();
  const { contactId } = useParams();
  const navigate = useNavigate();
  const client = useQueryClient();
  const editing = Boolean(contactId);
  const path = { contact_id: contactId ?? "" };
  const contact = useQuery({
    queryKey: ["contact", contactId],
    enabled: editing,
    queryFn: () => unwrap(api.GET("/v1/contacts/{contact_id}", { params: { path } })),
  });
  const tags = useQuery({ queryKey: ["tags"], queryFn: () => unwrap(api.GET("/v1/tags")) });
  const [form, setForm] = useState<Form>(EMPTY);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    const c = contact.data;
    if (c) setForm({ whatsapp_id: c.whatsapp_id, name: c.name ?? "", email: c.email ?? "", tags: c.tags });
  }, [contact.data]);

  const after = (id?: string) => {
    void client.invalidateQueries({ queryKey: ["contacts"] });
    void client.invalidateQueries({ queryKey: ["contact", id ?? contactId] });
    void client.invalidateQueries({ queryKey: ["tags"] });
  };
  const save = useMutation({
    mutationFn: async () => {
      const body = {
        whatsapp_id: form.whatsapp_id,
        name: form.name || null,
        email: form.email || null,
        tags: form.tags,
      };
      if (editing) return unwrap(api.PATCH("/v1/contacts/{contact_id}", { params: { path }, body }));
      return unwrap(api.POST("/v1/contacts", { body: { ...body, attributes: {}, opt_in: true } }));
    },
    onSuccess: (c) => {
      after(c.id);
      setSaved(true);
      if (!editing) navigate(`/contacts/${c.id}`, { replace: true });
    },
  });
  const action = useMutation({
    mutationFn: (what: "opt-in" | "opt-out" | "block" | "unblock") =>
      unwrap(api.POST(`/v1/contacts/{contact_id}/${what}`, { params: { path } })),
    onSuccess: () => after(),
  });
  const remove = useMutation({
    mutationFn: () => unwrap(api.DELETE("/v1/contacts/{contact_id}", { params: { path } })),
    onSuccess: () => {
      after();
      navigate("/contacts");
    },
  });
  const error = save.error instanceof ApiError ? save.error : null;
  const field = (name: keyof Form) => error?.fieldMessage(name);
  const c = contact.data;

  return (
    <Stack p="md" gap="sm" maw={640}>
      <Anchor component={Link} to="/contacts" size="sm">
        {t("contacts.back")}
      </Anchor>
      <Title order={2}>{editing ? t("contacts.edit") : t("contacts.new")}</Title>
      {c && (
        <Group gap="xs">
          <Badge variant="light" color={c.opt_in ? "teal" : "gray"}>
            {c.opt_in ? t("contacts.optedIn") : t("contacts.optedOut")}
          </Badge>
          {c.is_blocked && (
            <Badge variant="light" color="red">
              {t("contacts.blocked")}
            </Badge>
          )}
          <Text size="sm" c="dimmed">
            {t("contacts.conversations")}: {c.total_conversations} · {t("contacts.messagesTotal")}: {c.total_messages}
          </Text>
        </Group>
      )}
      <Paper withBorder p="md">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setSaved(false);
            save.mutate();
          }}
          noValidate
        >
          <Stack>
            <FormError error={error} />
            <TextInput
              label={t("contacts.number")}
              description={t("contacts.numberHint")}
              value={form.whatsapp_id}
              onChange={(e) => setForm({ ...form, whatsapp_id: e.currentTarget.value })}
              error={field("whatsapp_id")}
              required
              withAsterisk={false}
            />
            <TextInput
              label={t("contacts.name")}
              value={form.name}
              onChange={(e) => setForm({ ...form, name: e.currentTarget.value })}
              error={field("name")}
            />
            <TextInput
              label={t("contacts.email")}
              type="email"
              value={form.email}
              onChange={(e) => setForm({ ...form, email: e.currentTarget.value })}
              error={field("email")}
            />
            <TagsInput
              label={t("contacts.tags")}
              data={(tags.data ?? []).map((x) => x.name)}
              value={form.tags}
              onChange={(v) => setForm({ ...form, tags: v })}
              error={field("tags")}
            />
            <Group>
              <Button type="submit" loading={save.isPending}>
                {editing ? t("contacts.save") : t("contacts.create")}
              </Button>
              {saved && !save.isPending && (
                <Text size="sm" c="teal.9" role="status">
                  {t("contacts.saved")}
                </Text>
              )}
            </Group>
          </Stack>
        </form>
      </Paper>
      {c && (
        <Group gap="xs">
          <Button variant="default" onClick={() => action.mutate(c.opt_in ? "opt-out" : "opt-in")}>
            {c.opt_in ? t("contacts.optOut") : t("contacts.optIn")}
          </Button>
          <Button variant="default" onClick={() => action.mutate(c.is_blocked ? "unblock" : "block")}>
            {c.is_blocked ? t("contacts.unblock") : t("contacts.block")}
          </Button>
          <Button color="red" variant="light" onClick={() => confirmed(t("contacts.confirmDelete")) && remove.mutate()}>
            {t("contacts.delete")}
          </Button>
        </Group>
      )}
    </Stack>
  );
}
