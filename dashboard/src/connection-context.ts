// The token and namespace every view calls with, set in the header bar.

import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Connection } from "./api/connection.js";

export const ConnectionContext = createContext<Connection>({ token: "", namespace: "" });

export function useConnection(): Connection {
  return useContext(ConnectionContext);
}
