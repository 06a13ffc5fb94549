import { Alert, Modal, Stack } from "@mantine/core";
import type { ReactNode } from "react";
import { useTranslation } from "react-i18next";

import type { ApiError } from "../api/errors";

/** An error the API gave for the form as a whole (field errors show under their fields). */
export function FormError({ error }: { error: ApiError | null }) {
  if (!error || error.details.length) return null;
  return (
    <Alert color="red" role="alert">
      {error.message}
    </Alert>
  );
}

/** A dialog holding one form: submitting it calls `onSubmit`; the API's form-level error
 * shows above the fields. Every settings page creates its resources through one. */
export function FormModal({
  opened,
  onClose,
  title,
  size,
  error,
  onSubmit,
  children,
}: {
  opened: boolean;
  onClose: () => void;
  title: string;
  size?: string;
  error: ApiError | null;
  onSubmit: () => void;
  children: ReactNode;
}) {
  const { t } = useTranslation();
  return (
    <Modal closeButtonProps={{ "aria-label": t("app.close") }} opened={opened} onClose={onClose} title={title} size={size}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          onSubmit();
        }}
      >
        <Stack>
          <FormError error={error} />
          {children}
        </Stack>
      </form>
    </Modal>
  );
}
