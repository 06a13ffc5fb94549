import { Route, Routes } from "react-router";

import { ContactEditor } from "./ContactEditor";
import { ContactTable } from "./ContactTable";

export default function ContactsPage() {
  return (
    <Routes>
      <Route index element={<ContactTable />} />
      <Route path="new" element={<ContactEditor />} />
      <Route path=":contactId" element={<ContactEditor />} />
    </Routes>
  );
}
