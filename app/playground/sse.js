// A job's server-sent events, read with fetch() so the request carries the Authorization
// header (EventSource cannot send one).

import { send } from "./api.js";

// A job's final statuses, which are also the names of its final events.
export const FINAL = new Set(["succeeded", "failed", "canceled"]);

// Parse one SSE block ("event: x\nid: 1\ndata: {...}") into {event, data}; null for comments.
function parseBlock(block) {
  const fields = {};
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^ /, "");
    fields[name] = name in fields ? `${fields[name]}\n${value}` : value;
  }
  if (!fields.data) return null;
  return { event: fields.event || "message", data: JSON.parse(fields.data) };
}

// Call onEvent(event, data) for each event of the job until its final one; resolve with the
// finished job (the final event carries it).
export async function followJob(jobId, onEvent) {
  const response = await send("GET", `/v1/jobs/${jobId}/events`, {
    headers: { Accept: "text/event-stream" },
  });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const parsed = parseBlock(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (!parsed) continue;
      onEvent(parsed.event, parsed.data);
      if (FINAL.has(parsed.event)) {
        reader.cancel();
        return parsed.data.job;
      }
    }
  }
  return undefined;
}
