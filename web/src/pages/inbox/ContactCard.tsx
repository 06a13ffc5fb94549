import { Anchor, Badge, Group, Stack, Text, Title } from "@mantine/core";
import { useTranslation } from "react-i18next";
import { Link } from "react-router";

import { useContact } from "./queries";
import classes from "./inbox.module.css";

export function ContactCard({ contactId }: { contactId: string }) {
  const { t } = useTranslation();
  const contact = useContact(contactId);
  const c = contact.data;
  return (
    <aside className={classes.card} aria-label={t("contact.card")}>
      <Stack gap="xs" p="md">
        <Title order={2} size="h5">
          {t("contact.card")}
        </Title>
        {c && (
          <>
            <Text fw={600}>{c.name || c.profile_name || c.whatsapp_id}</Text>
            <Field label={t("contact.phone")} value={c.whatsapp_id} />
            <Field label={t("contact.email")} value={c.email ?? t("contact.none")} />
            <Group gap={4}>
              <Badge color={c.opt_in ? "teal" : "gray"} variant="light">
                {c.opt_in ? t("contact.optedIn") : t("contact.optedOut")}
              </Badge>
              {c.is_blocked && (
                <Badge color="red" variant="light">
                  {t("contact.blocked")}
                </Badge>
              )}
            </Group>
            <Field label={t("contact.tags")} value={c.tags.length ? c.tags.join(", ") : t("contact.none")} />
            <Field label={t("contact.conversations")} value={String(c.total_conversations)} />
            <Field label={t("contact.messagesTotal")} value={String(c.total_messages)} />
            <Anchor component={Link} to={`/contacts/${c.id}`} size="sm">
              {t("contact.open")}
            </Anchor>
          </>
        )}
      </Stack>
    </aside>
  );
}

function Field({ label, value }: { label: string; value: string }) {
  return (
    <div>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text size="sm">{value}</Text>
    </div>
  );
}
