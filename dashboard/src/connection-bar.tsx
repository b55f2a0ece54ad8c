// The header's token and namespace fields. Applied with the "Use" button (or Enter), not on
// every keystroke, so typing a token does not fire a request per character.

import { useState } from "preact/hooks";
import type { Connection } from "./api/connection.js";

export function ConnectionBar({ connection, onChange }: { connection: Connection; onChange: (c: Connection) => void }) {
  const [token, setToken] = useState(connection.token);
  const [namespace, setNamespace] = useState(connection.namespace);
  return (
    <form
      class="connection"
      onSubmit={(e) => {
        e.preventDefault();
        onChange({ token: token.trim(), namespace: namespace.trim() });
      }}
    >
      <label>
        Token
        <input type="password" name="token" autocomplete="off" placeholder="none" value={token} onInput={(e) => setToken(e.currentTarget.value)} />
      </label>
      <label>
        Namespace
        <input type="text" name="namespace" placeholder="default" value={namespace} onInput={(e) => setNamespace(e.currentTarget.value)} />
      </label>
      <button type="submit">Use</button>
    </form>
  );
}
