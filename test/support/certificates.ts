// Certificates for TLS tests, made with the openssl command line in a fresh
// temporary folder: CAs, server certificates for 127.0.0.1/localhost, client
// certificates, and expired ones (`openssl ca` with dates in the past).

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface Pem {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

/** openssl req arguments for a new P-256 key, unencrypted. */
const NEW_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export class Certificates {
  readonly dir = mkdtempSync(path.join(tmpdir(), "pipewright-tls-"));
  private serial = 1;

  private openssl(...args: string[]): void {
    execFileSync("openssl", args, { cwd: this.dir, stdio: ["ignore", "ignore", "pipe"] });
  }

  private pem(name: string): Pem {
    const [certFile, keyFile] = [path.join(this.dir, `${name}.pem`), path.join(this.dir, `${name}.key`)];
    return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
  }

  /** A self-signed CA. */
  ca(name: string): Pem {
    this.openssl("req", "-x509", ...NEW_EC_KEY, "-keyout", `${name}.key`, "-out", `${name}.pem`, "-subj", `/CN=${name}`, "-days", "2");
    return this.pem(name);
  }

  /**
   * A certificate signed by `ca`: a server's (SAN 127.0.0.1, ::1, localhost, and the addresses in `ips`)
   * or a client's; `expired`: valid only in 2020.
   */
  issue(name: string, ca: Pem, kind: "server" | "client", { expired = false, ips = [] as string[] } = {}): Pem {
    const key = `${name}.key`;
    const serverNames = ["IP:127.0.0.1", "IP:::1", "DNS:localhost", ...ips.map((ip) => `IP:${ip}`)];
    const san = kind === "server" ? `subjectAltName=${serverNames.join(",")}` : "subjectAltName=DNS:client";
    const usage = kind === "server" ? "extendedKeyUsage=serverAuth" : "extendedKeyUsage=clientAuth";
    this.openssl("req", "-new", ...NEW_EC_KEY, "-keyout", key, "-out", `${name}.csr`, "-subj", `/CN=${name}`, "-addext", san, "-addext", usage);
    const db = `${name}.index`;
    writeFileSync(path.join(this.dir, db), "");
    writeFileSync(
      path.join(this.dir, `${name}.cnf`),
      [
        "[ca]",
        "default_ca = ca_section",
        "[ca_section]",
        `database = ${db}`,
        "new_certs_dir = .",
        `serial = ${name}.serial`,
        "default_md = sha256",
        "policy = policy_any",
        "copy_extensions = copy",
        "unique_subject = no",
        "[policy_any]",
        "commonName = supplied",
        "",
      ].join("\n"),
    );
    writeFileSync(path.join(this.dir, `${name}.serial`), `${(this.serial++).toString(16).padStart(4, "0")}\n`);
    const dates = expired ? ["-startdate", "20200101000000Z", "-enddate", "20200102000000Z"] : ["-days", "2"];
    this.openssl(
      "ca",
      "-batch",
      "-notext",
      "-config",
      `${name}.cnf`,
      "-cert",
      ca.certFile,
      "-keyfile",
      ca.keyFile,
      "-in",
      `${name}.csr`,
      "-out",
      `${name}.pem`,
      ...dates,
    );
    return this.pem(name);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
