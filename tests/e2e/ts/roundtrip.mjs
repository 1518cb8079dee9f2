// One round trip through the official TypeScript SDK against a live `kennel serve`.
// HANDINGER_BASE_URL and HANDINGER_API_KEY name the server; prints one JSON document of
// what the SDK returned, which tests/e2e/test_tasks_sdk.py checks.
import Handinger, { NotFoundError } from '@ramensoft/handinger';

const client = new Handinger({ maxRetries: 0, timeout: 60_000 });
const taskId = process.argv[2];

const template = await client.workers.create({
  title: 'TypeScript Beagle',
  instructions: 'Answer briefly.',
});
const created = await client.tasks.create({
  input: 'Hello from TypeScript',
  workerId: template.id,
  taskId,
});
const followUp = await client.tasks.create({ input: 'And a follow-up', taskId });
const retrieved = await client.tasks.retrieve(taskId);
const turns = await client.tasks.listTurns(taskId);
const worker = await client.workers.retrieve(template.id);

let missing = null;
try {
  await client.tasks.retrieve('tsk_does_not_exist');
} catch (error) {
  missing = {
    notFound: error instanceof NotFoundError,
    status: error.status,
    error: error.error,
  };
}

console.log(JSON.stringify({ template, created, followUp, retrieved, turns, worker, missing }));
