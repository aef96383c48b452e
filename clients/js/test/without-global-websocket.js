// Imported first by the *.test.js files that open event streams: they test the SDK on the
// `ws` package (Node 20's case) on every node, so hide the global WebSocket that Node 22+
// has. standard-websocket.mjs tests the platform's WebSocket.

delete globalThis.WebSocket;
