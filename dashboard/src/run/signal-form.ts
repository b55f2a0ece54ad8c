// Sending a signal to a run whose wait step waits for one (StepStatus.waiting_for
// "signal <name>"): the name prefilled, a JSON payload (the waiting step's result), Send.
// The payload is parsed in the page first: text that is not JSON is refused before any call.
// The answer says what the server did with it (delivered, kept for a later step, a duplicate)
// or why it refused (a token without the control scope, a run that has finished).

import { h } from "preact";
import { useState } from "preact/hooks";
import { SignalDelivery } from "../../../proto/gen/pipewright/v1/run_service_pb.js";
import type { Run } from "../../../proto/gen/pipewright/v1/run_pb.js";
import { callUnary } from "../api/gateway.js";
import { rpc } from "../api/rpc.js";
import { RefusalLine, valueOf } from "../components.js";
import { useConnection } from "../connection-context.js";

const utf8 = new TextEncoder();

/** The signal a wait step waits for, from its `waiting_for` ("signal approve" -> "approve"). */
export function signalNameOf(waitingFor: string): string | undefined {
  return waitingFor.startsWith("signal ") ? waitingFor.slice("signal ".length) : undefined;
}

/** The payload as the SDKs encode it (JSON, encoding ""), or an error naming what is wrong; empty text sends none. */
export function parsePayload(text: string): { data?: Uint8Array; error?: string } {
  if (!text.trim()) return {};
  try {
    return { data: utf8.encode(JSON.stringify(JSON.parse(text))) };
  } catch (err) {
    return { error: `The payload is not JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** What the server answered to a signal sent from this page. */
interface Sent {
  name: string;
  delivery: SignalDelivery;
}

/**
 * The forms for the signals the run's steps wait for, and the answer to the last one sent:
 * kept here, so it stays on the page after the step it woke has moved on (and its form gone).
 */
export function SignalPanel({ run, names, onRun }: { run: Run; names: string[]; onRun: (run: Run) => void }) {
  const [sent, setSent] = useState<Sent>();
  return h(
    "div",
    { class: "signals" },
    names.map((name) => h(SignalForm, { key: name, run, name, onRun, onSent: setSent })),
    sent
      ? h(
          "p",
          { class: "signal-answer note", "data-delivery": SignalDelivery[sent.delivery] ?? "UNSPECIFIED" },
          `Signal ${sent.name}: ${deliveryText(sent.delivery)}`,
        )
      : null,
  );
}

function SignalForm({ run, name: waitedFor, onRun, onSent }: { run: Run; name: string; onRun: (run: Run) => void; onSent: (sent: Sent) => void }) {
  const connection = useConnection();
  const [name, setName] = useState(waitedFor);
  const [payload, setPayload] = useState("");
  const [busy, setBusy] = useState(false);
  const [invalid, setInvalid] = useState<string>();
  const [refusal, setRefusal] = useState<unknown>();

  const send = async (e: Event) => {
    e.preventDefault();
    setRefusal(undefined);
    const parsed = parsePayload(payload);
    setInvalid(parsed.error);
    if (parsed.error) return;
    setBusy(true);
    try {
      const r = await callUnary(connection, rpc.signalRun, {
        runId: run.id,
        name: name.trim(),
        payload: parsed.data ? { kind: { case: "payload", value: { data: parsed.data } } } : undefined,
      });
      onSent({ name: name.trim(), delivery: r.delivery });
      if (r.run) onRun(r.run);
    } catch (err) {
      setRefusal(err);
    } finally {
      setBusy(false);
    }
  };

  return h(
    "form",
    { class: "signal-form", onSubmit: send },
    h("h2", null, "Send a signal"),
    h("label", null, "Name ", h("input", { name: "signal-name", value: name, onInput: (e: Event) => setName(valueOf(e)) })),
    h(
      "label",
      { class: "payload" },
      "Payload (JSON) ",
      h("textarea", { name: "signal-payload", rows: 3, placeholder: '{"approved": true}', value: payload, onInput: (e: Event) => setPayload(valueOf(e)) }),
    ),
    h("button", { type: "submit", name: "send-signal", disabled: busy || !name.trim() }, "Send"),
    invalid ? h("p", { class: "error-line", role: "alert" }, invalid) : null,
    h(RefusalLine, { error: refusal, scope: "control", what: "Sending a signal" }),
  );
}

function deliveryText(d: SignalDelivery): string {
  switch (d) {
    case SignalDelivery.DELIVERED:
      return "delivered";
    case SignalDelivery.KEPT:
      return "kept until a step waits for it";
    case SignalDelivery.DUPLICATE:
      return "duplicate (already sent)";
    default:
      return "accepted (another server process applied it)";
  }
}
