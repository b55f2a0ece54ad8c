// Import boundaries between the packages and between the server's layers, checked by
// `npm run lint:deps` (a stage of `npm test`) and by test/boundaries/boundaries.test.ts, which
// also proves on tiny fixture trees that each rule below can fire. This file is the one source
// of truth for both.
//
// Paths in the rules are relative to the repository root (dependency-cruiser's baseDir), and
// `@pipewright/*` imports resolve to their TypeScript sources through tsconfig.json `paths`
// (options.tsConfig), the same way tsc, tsx and vitest resolve them: so `@pipewright/protocol`
// is seen as proto/index.ts, not as some node_modules symlink.
//
// Type-only imports (`import type`, `export type ... from`) count like any other import: the
// swc parser reports them as plain imports. That is the choice for the cycle rule too: a
// type-only cycle compiles away today, but it still means two modules cannot be understood,
// moved or split apart one without the other, and it becomes a runtime cycle the day someone
// adds a value import along the same edge.

/** Node builtins and npm packages: what a layer may import besides the folders it is allowed. */
const NODE_MODULES = "(^|/)node_modules/";

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "protocol-depends-on-nothing-of-ours",
      comment:
        "proto/ (@pipewright/protocol) is the contract that client, worker and server share: " +
        "it must not import any of them, or a client would pull in server code (and its " +
        "dependencies) and the layering of the packages would be circular.",
      severity: "error",
      from: { path: "^proto/" },
      to: { path: "^(client|worker-sdk|server)/" },
    },
    {
      name: "core-is-pure",
      comment:
        "server/core/ is the pure orchestration logic, a function of (state, event): it may use " +
        "only the protocol package, itself, node builtins and npm packages. Storage, engine, " +
        "dispatch, api and cli (I/O) depend on it, never the other way round; so do client/ " +
        "and worker-sdk/, which are other packages.",
      severity: "error",
      from: { path: "^server/core/" },
      to: {
        pathNot: `^(server/core|proto)/|${NODE_MODULES}`,
        dependencyTypesNot: ["core"],
        couldNotResolve: false, // reported by no-unresolvable
      },
    },
    {
      name: "store-below-engine",
      comment:
        "server/store/ is the SQL layer: the engine, the dispatcher, the api and the cli call " +
        "it. If it imported them, a change in how runs are driven would reach into how they are " +
        "stored, and the layers would form a cycle.",
      severity: "error",
      from: { path: "^server/store/" },
      to: { path: "^server/(engine|dispatch|api|cli)/" },
    },
    {
      name: "dispatch-sees-engine-only-through-ports",
      comment:
        "The dispatcher and the engine exchange work only through server/engine/ports.ts " +
        "(DispatchPort, ResultSink, the reserve -> deliver/release protocol written once). " +
        "Anything else from the engine would couple the dispatcher to its internals.",
      severity: "error",
      from: { path: "^server/dispatch/" },
      to: { path: "^server/engine/", pathNot: "^server/engine/ports\\.ts$" },
    },
    {
      name: "schedule-uses-engine-front-door",
      comment:
        "server/schedule/ (the scheduler loop that fires schedules) starts runs like any client " +
        "would: through the engine's front door (run-engine.ts, and items.ts for PreparedSubmit) " +
        "with core, store and observe beside it. It must not reach into engine internals, the " +
        "dispatcher, the api or the cli: the api calls it (TriggerSchedule), never the other way.",
      severity: "error",
      from: { path: "^server/schedule/" },
      to: { path: "^server/", pathNot: "^server/(schedule|core|store|observe)/|^server/engine/(run-engine|items)\\.ts$" },
    },
    {
      name: "observe-is-a-leaf",
      comment:
        "server/observe/ holds what watches the server from outside (metrics, traces, logs): " +
        "every layer may report to it, so it may import only the protocol package, itself, " +
        "node builtins and npm packages. If it reached into the engine or the store, reporting " +
        "would become a way around the layers.",
      severity: "error",
      from: { path: "^server/observe/" },
      to: {
        pathNot: `^(server/observe|proto)/|${NODE_MODULES}`,
        dependencyTypesNot: ["core"],
        couldNotResolve: false, // reported by no-unresolvable
      },
    },
    {
      name: "events-use-the-engine-front-door",
      comment:
        "server/events/ (publishing events, starting triggers' runs, the sweeper) starts runs " +
        "like any caller, through the engine's front door (run-engine.ts and the types of " +
        "items.ts), and uses core, store and observe. It may not reach into the engine's rooms, " +
        "nor the api, cli or dispatch layers: what it needs from the api (checking a submit) " +
        "comes in through events/ports.ts, filled in by server/server.ts.",
      severity: "error",
      from: { path: "^server/events/" },
      to: {
        pathNot: `^(server/(events|core|store|observe)|proto)/|^server/engine/(run-engine|items)\\.ts$|${NODE_MODULES}`,
        dependencyTypesNot: ["core"],
        couldNotResolve: false, // reported by no-unresolvable
      },
    },
    {
      name: "client-depends-only-on-protocol",
      comment:
        "@pipewright/client may import only @pipewright/protocol (besides node builtins and npm " +
        "packages): a project that installs the client alone must not pull in the worker SDK or " +
        "the server (PostgreSQL, grpc server code).",
      severity: "error",
      from: { path: "^client/" },
      to: {
        pathNot: `^(client|proto)/|${NODE_MODULES}`,
        dependencyTypesNot: ["core"],
        couldNotResolve: false, // reported by no-unresolvable
      },
    },
    {
      name: "worker-sdk-not-server",
      comment:
        "@pipewright/worker runs in the users' worker processes: it must never import the " +
        "server (its database and gRPC server code would ship into every worker).",
      severity: "error",
      from: { path: "^worker-sdk/" },
      to: { path: "^server/" },
    },
    {
      name: "dashboard-depends-only-on-protocol",
      comment:
        "dashboard/ is the web page the server serves: it talks to the server through the same " +
        "API as any client (the JSON gateway) and may import only the protocol package (the " +
        "generated messages) and npm packages. Server, client or worker code in the bundle " +
        "would ship Node-only code to the browser and tie the page to internals.",
      severity: "error",
      from: { path: "^dashboard/" },
      to: {
        pathNot: `^(dashboard|proto)/|${NODE_MODULES}`,
        dependencyTypesNot: ["core"],
        couldNotResolve: false, // reported by no-unresolvable
      },
    },
    {
      name: "dashboard-runs-in-the-browser",
      comment:
        "dashboard/src/ runs in the browser, where node builtins do not exist: an import of " +
        "one would break the page at load (only the build's vite.config.ts, outside src/, runs " +
        "on Node).",
      severity: "error",
      from: { path: "^dashboard/src/" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "no-cycles",
      comment:
        "No circular imports in the packages, type-only ones included (see the header): a cycle " +
        "means modules that cannot be loaded, tested or moved one without the other, and ES " +
        "module cycles give `undefined` bindings depending on which module loads first.",
      severity: "error",
      from: { path: "^(proto|client|worker-sdk|server|dashboard)/" },
      to: { circular: true },
    },
    {
      name: "no-unresolvable",
      comment:
        "Every import must resolve to a file. Without this the rules above could pass by " +
        "accident: an import that resolves to nothing (a misspelt path, a broken tsconfig " +
        "paths mapping) is matched by none of them.",
      severity: "error",
      from: { path: "^(proto|client|worker-sdk|server|dashboard)/" },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // TypeScript 7 (the project's tsc) has no JavaScript compiler API, and dependency-cruiser's
    // own TypeScript parser needs one (it accepts typescript < 7): swc parses the sources instead.
    parser: "swc",
    // `paths` of tsconfig.json map the package names to their sources (resolved with
    // tsconfig-paths, which reads the file itself and needs no TypeScript API). As tsconfig.json
    // has no baseUrl, dependency-cruiser hands tsconfig-paths a baseUrl of "./", which it takes
    // from the working directory: run depcruise from the repository root (npm run does).
    tsConfig: { fileName: "tsconfig.json" },
    // Built output and installed packages are not ours to check: their files are not cruised
    // and their own imports not followed. They are not `exclude`d, though: an excluded module
    // disappears as a dependency too, so an import that reached, say, server/dist/ through a
    // workspace symlink would go unseen; this way it still shows up, under ^server/.
    doNotFollow: { path: "(^|/)(dist|node_modules)/" },
    enhancedResolveOptions: {
      // Subpath imports such as @bufbuild/protobuf/wkt exist only in the packages' `exports`.
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default"],
      mainFields: ["module", "main", "types"],
    },
  },
};
