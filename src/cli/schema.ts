// `proxywall schema`: the JSON Schema of every event line, generated from the valibot schema.
import { defineCommand } from "citty";
import { eventJsonSchema } from "../events/json-schema.ts";

export default defineCommand({
  meta: { name: "schema", description: "Print the JSON Schema of every JSON line proxywall writes" },
  args: {},
  run() {
    console.log(JSON.stringify(eventJsonSchema(), null, 2));
    return 0;
  },
});
