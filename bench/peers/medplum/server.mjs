// Medplum's Hl7Server (npm @medplum/hl7, Apache-2.0) as a peer for bench/ingest.py: it
// acknowledges every message as soon as it has parsed it, and stores nothing.
// node bench/peers/medplum/server.mjs [PORT]   (prints "ready PORT" once listening)
import { Hl7Server } from '@medplum/hl7';

const server = new Hl7Server((connection) => {
  connection.addEventListener('message', ({ message }) => connection.send(message.buildAck()));
});
await server.start(Number(process.argv[2] || 0));
console.log(`ready ${server.server.address().port}`);
const stop = () => server.stop({ forceDrainTimeoutMs: 1000 }).then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
