// The header's token and namespace fields. Applied with the "Use" button (or Enter), not on
// every keystroke, so typing a token does not fire a request per character.

import { h } from "preact";
import { useState } from "preact/hooks";
import type { Connection } from "./api/connection.js";
import { valueOf } from "./components.js";

export function ConnectionBar({ connection, onChange }: { connection: Connection; onChange: (c: Connection) => void }) {
  const [token, setToken] = useState(connection.token);
  const [namespace, setNamespace] = useState(connection.namespace);
  const submit = (e: Event) => {
    e.preventDefault();
    onChange({ token: token.trim(), namespace: namespace.trim() });
  };
  return h(
    "form",
    { class: "connection", onSubmit: submit },
    h(
      "label",
      null,
      "Token ",
      h("input", { type: "password", name: "token", autocomplete: "off", placeholder: "none", value: token, onInput: (e: Event) => setToken(valueOf(e)) }),
    ),
    h(
      "label",
      null,
      "Namespace ",
      h("input", { type: "text", name: "namespace", placeholder: "default", value: namespace, onInput: (e: Event) => setNamespace(valueOf(e)) }),
    ),
    h("button", { type: "submit" }, "Use"),
  );
}
