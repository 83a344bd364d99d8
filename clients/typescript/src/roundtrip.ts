// Drives a running Darkroom server with the SDK generated from its published OpenAPI document:
// generate an image on the offline draft model, follow the job's event stream to its end,
// download an output and check its bytes, then make a request the server refuses and read the
// refusal as a typed problem. Prints one JSON summary on stdout; any surprise exits non-zero.
//
// Reads DARKROOM_BASE_URL and DARKROOM_API_KEY from the environment.

import { createClient, createConfig } from './generated/client/index.js';
import { generateImage, getAsset, getAssetContent, getJob } from './generated/sdk.gen.js';
import type {
  GenerateRequest,
  Job,
  JobOutput,
  Problem,
  StreamJobEventsData,
} from './generated/types.gen.js';

/** A problem+json answer, thrown as an error a caller can catch and inspect by its fields. */
export class DarkroomProblem extends Error {
  readonly type: Problem['type'];
  readonly title: Problem['title'];
  readonly status: Problem['status'];
  readonly detail: Problem['detail'];

  constructor(problem: Problem) {
    super(`${problem.status} ${problem.title}: ${problem.detail}`);
    this.name = 'DarkroomProblem';
    this.type = problem.type;
    this.title = problem.title;
    this.status = problem.status;
    this.detail = problem.detail;
  }
}

const FINAL_EVENTS = new Set(['succeeded', 'failed', 'canceled']);
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function requiredEnvironment(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

const apiKey = requiredEnvironment('DARKROOM_API_KEY');
const client = createClient(
  createConfig({ baseUrl: requiredEnvironment('DARKROOM_BASE_URL'), auth: apiKey }),
);

/** Submit a generate job; a refusal is thrown as a DarkroomProblem. */
async function submit(body: GenerateRequest): Promise<Job> {
  const { data, error } = await generateImage({ client, body });
  if (error !== undefined) {
    throw new DarkroomProblem(error);
  }
  return data;
}

/** One server-sent event: its name and its data, still unparsed. */
interface ServerSentEvent {
  event: string;
  data: string;
}

/** Parse one SSE block (the lines between blank lines); a heartbeat comment yields nothing. */
function parseEventBlock(block: string): ServerSentEvent | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) {
      event = line.slice('event:'.length).trim();
    } else if (line.startsWith('data:')) {
      data.push(line.slice('data:'.length).trimStart());
    }
  }
  return data.length > 0 ? { event, data: data.join('\n') } : undefined;
}

/** The events of a text/event-stream body, read chunk by chunk as they arrive. */
async function* serverSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        return;
      }
      // Normalized over the whole buffer, so a CRLF split across two chunks still counts once.
      buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n/g, '\n');
      let end = buffer.indexOf('\n\n');
      while (end !== -1) {
        const parsed = parseEventBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (parsed !== undefined) {
          yield parsed;
        }
        end = buffer.indexOf('\n\n');
      }
    }
  } finally {
    await reader.cancel();
  }
}

/** The job id an event's JSON data names, checked against the job being followed. */
function eventJobId(data: string): unknown {
  const parsed: unknown = JSON.parse(data);
  return typeof parsed === 'object' && parsed !== null && 'job_id' in parsed
    ? parsed.job_id
    : undefined;
}

/** Follow GET /v1/jobs/{id}/events until a final event; the names of the events seen. */
async function followEvents(jobId: string): Promise<string[]> {
  // The URL comes from the generated operation's path template, so a renamed path or
  // parameter fails to compile rather than to connect.
  const url = client.buildUrl<StreamJobEventsData>({
    path: { job_id: jobId },
    url: '/v1/jobs/{job_id}/events',
  });
  const response = await fetch(url, {
    headers: { Accept: 'text/event-stream', Authorization: `Bearer ${apiKey}` },
  });
  if (!response.ok || response.body === null) {
    throw new Error(`event stream answered ${response.status}`);
  }
  const seen: string[] = [];
  for await (const { event, data } of serverSentEvents(response.body)) {
    if (eventJobId(data) !== jobId) {
      throw new Error(`event ${event} is not about job ${jobId}: ${data}`);
    }
    seen.push(event);
    if (FINAL_EVENTS.has(event)) {
      return seen;
    }
  }
  throw new Error(`the event stream ended before a final event; seen: ${seen.join(', ')}`);
}

/** Read a finished job back through the SDK. */
async function fetchJob(jobId: string): Promise<Job> {
  const { data, error } = await getJob({ client, path: { job_id: jobId } });
  if (error !== undefined) {
    throw new DarkroomProblem(error);
  }
  return data;
}

/** Width and height from a PNG's IHDR chunk (right after the 8-byte signature). */
function pngSize(bytes: Uint8Array): [number, number] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return [view.getUint32(16), view.getUint32(20)];
}

/** Download an output's bytes and check them against what the API says of the asset. */
async function checkOutput(output: JobOutput) {
  const path = { asset_id: output.asset_id };
  const asset = await getAsset({ client, path });
  if (asset.error !== undefined) {
    throw new DarkroomProblem(asset.error);
  }
  const content = await getAssetContent({ client, path });
  if (content.error !== undefined) {
    throw new DarkroomProblem(content.error);
  }
  const bytes = new Uint8Array(await content.data.arrayBuffer());
  const isPng = PNG_SIGNATURE.every((byte, index) => bytes[index] === byte);
  return {
    asset_id: output.asset_id,
    content_type: content.response.headers.get('content-type'),
    is_png: isPng,
    downloaded_bytes: bytes.byteLength,
    reported_bytes: asset.data.bytes,
    reported_size: [output.width, output.height],
    png_size: isPng ? pngSize(bytes) : null,
  };
}

/** A generate request on a model the server does not know, caught as a typed problem. */
async function refusedRequest() {
  try {
    await submit({ prompt: 'a lighthouse at dusk', model: 'nowhere/no-such-model' });
  } catch (caught) {
    if (caught instanceof DarkroomProblem) {
      const { name, type, title, status, detail } = caught;
      return { name, type, title, status, detail };
    }
    throw caught;
  }
  throw new Error('a generate request on an unknown model was accepted');
}

async function main(): Promise<void> {
  const submitted = await submit({
    prompt: 'a ceramic mug on a walnut desk, morning light',
    model: 'local/draft',
    size: '320x200',
    output_format: 'png',
    seed: 7,
  });
  const events = await followEvents(submitted.id);
  const job = await fetchJob(submitted.id);
  const [first] = job.outputs ?? [];
  const summary = {
    job: { id: job.id, submitted_status: submitted.status, status: job.status, events },
    output: first === undefined ? null : await checkOutput(first),
    problem: await refusedRequest(),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

await main();
