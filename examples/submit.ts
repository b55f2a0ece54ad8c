// Submits the continuation example and prints its result:
//   npm run worker:example   (in another terminal), then
//   node --import tsx examples/submit.ts            -> 3

import { PipewrightClient } from "@pipewright/client";
import { divide, multiply } from "./tasks.js";

const client = new PipewrightClient();
const run = await client.submit(multiply.send(3, 2).continueWith(divide, 2), { name: "continuation" });
console.log(await run.result());
client.close();
