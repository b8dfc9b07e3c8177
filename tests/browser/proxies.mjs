// Tiny loopback proxies put between the real browser and the real server, standing in for
// networks the client must cope with. Each forwards requests unchanged (Host included, so
// the page stays same-origin with the server):
//   refuseUpgrades: answers every WebSocket upgrade with 403 (a proxy that breaks WebSocket);
//   bufferStreams:  also refuses upgrades, and holds every response whole until it ends
//                   (a proxy that buffers: streamed responses never arrive, polls do).
// And one that changes nothing:
//   countBytes:     passes TCP through as it is and counts the bytes each way, so a test
//                   can say what a browser sent and received, heads included.
import http from 'node:http';
import net from 'node:net';

function proxy(target, { buffer }) {
  const [host, port] = target.split(':');
  const server = http.createServer((req, res) => {
    const up = http.request({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers, agent: false }, (ures) => {
      if (!buffer) {
        res.writeHead(ures.statusCode, ures.headers);
        ures.pipe(res);
        return;
      }
      const parts = [];
      ures.on('data', (b) => parts.push(b));
      ures.on('end', () => {
        const body = Buffer.concat(parts);
        const headers = { ...ures.headers, 'content-length': String(body.length) };
        delete headers['transfer-encoding'];
        res.writeHead(ures.statusCode, headers);
        res.end(body);
      });
    });
    up.on('error', () => res.destroy());
    // The browser went away before the answer ended: so does the request upstream.
    res.on('close', () => { if (!res.writableFinished) up.destroy(); });
    req.pipe(up);
  });
  server.on('upgrade', (req, socket) => {
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  const sockets = new Set();
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  })));
}

export const refuseUpgrades = (target) => proxy(target, { buffer: false });
export const bufferStreams = (target) => proxy(target, { buffer: true });

export function countBytes(target) {
  const [host, port] = target.split(':');
  const n = { up: 0, down: 0 };
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.on('data', (b) => { n.up += b.length; upstream.write(b); });
    upstream.on('data', (b) => { n.down += b.length; client.write(b); });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    bytes: () => ({ ...n }),
    close: () => new Promise((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  })));
}
