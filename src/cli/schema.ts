// `proxywall schema [--event-format F]`: the JSON Schema of every event line in that format (json:
// generated from the valibot schema of proxywall's own lines; ocsf, ecs: of the mapped lines).
import { defineCommand } from "citty";
import * as v from "valibot";
import { eventFormat, EventFormatOption } from "../events/formats/index.ts";
import { validate } from "./argv.ts";
import { eventFormatArg } from "./fence-options.ts";
import { usageError } from "../exit-codes.ts";

export default defineCommand({
  meta: { name: "schema", description: "Print the JSON Schema of every event line proxywall writes, in the --event-format given" },
  args: { "event-format": eventFormatArg },
  run({ args }) {
    const o = validate(v.object({ eventFormat: EventFormatOption }), { eventFormat: args["event-format"] });
    const schema = eventFormat(o.eventFormat).schema();
    if (schema === null) throw usageError(`--event-format ${o.eventFormat} lines are not JSON: they have no JSON Schema`);
    console.log(JSON.stringify(schema, null, 2));
    return 0;
  },
});
