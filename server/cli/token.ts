// `pipewright token create`: a fresh token for the server's tokens file; and
// `--token` (or PIPEWRIGHT_TOKEN) on every client verb (README: Security / Tokens).

import { Command, Option } from "commander";
import { createToken, parseScopes } from "../api/tokens.js";
import type { Io } from "./io.js";
import { CliError, EXIT } from "./output.js";

export function addTokenCommand(program: Command, io: Io): void {
  const token = program.command("token").description("make tokens for the server's --tokens-file");
  token
    .command("create")
    .description("print a new token's secret (shown once: give it to the caller) and its line for the tokens file (the hash, not the secret)")
    .requiredOption("--name <name>", "the token's name (unique in the file; delete its line to revoke it)")
    .requiredOption("--scopes <scopes>", "comma-separated: submit, read, control, worker, admin, or all")
    .option("--namespaces <names>", "comma-separated namespaces the token may work in, or * for every one", "default")
    .action((opts: { name: string; scopes: string; namespaces: string }) => {
      let made: ReturnType<typeof createToken>;
      try {
        made = createToken(opts.name, parseScopes(opts.scopes), opts.namespaces);
      } catch (err) {
        throw new CliError(`error: ${(err as Error).message}`, EXIT.usage);
      }
      io.out(`secret: ${made.secret}\n`);
      io.out(`line:   ${made.line}\n`);
      io.err("Give the secret to the caller (PIPEWRIGHT_TOKEN or --token); add the line to the tokens file. The secret is not shown again.\n");
    });
}

/** Adds `--token` and `--namespace` to every verb that calls the server (those with `--address`, but not `server`). */
export function addTokenOptions(program: Command): void {
  for (const cmd of program.commands)
    if (cmd.name() !== "server" && cmd.options.some((o) => o.long === "--address")) {
      cmd.addOption(new Option("--token <token>", "the token to present (README: Security / Tokens)").env("PIPEWRIGHT_TOKEN"));
      cmd.addOption(new Option("--namespace <name>", "the namespace to work in (default: default)").env("PIPEWRIGHT_NAMESPACE"));
    }
}
