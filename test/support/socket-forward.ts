// The byte pipe behind every forwarder of the kubelet stand-in: the LoadBalancer/Service proxy
// (service-proxy.ts), the pod-IP forwarder and the bridge inside the pod's network namespace
// (pod-network.ts; the bridge runs as `node -e`, so it gets pipeSockets' source inlined).
import { connect, createServer, type NetConnectOpts, type Server, type Socket } from 'node:net';

/**
 * Pipes a and b both ways until both directions are done, as a TCP connection through kube-proxy
 * would: an end's FIN reaches the other end after every byte sent before it (pipe() ends the
 * other side's write half once its buffered bytes are out), and the socket is let go only once
 * both of its halves are finished, or destroyed with the other one when either fails or is
 * destroyed. Both sockets must be allowHalfOpen.
 *
 * Why: skopeo sends `Connection: close` with every request (Go's HTTP client with keep-alives
 * off), so nginx answers a blob GET and closes right after its last byte. The forwarders destroyed
 * both sockets on that 'close', dropping whatever part of the body was still queued for a client
 * slower than nginx (written to the client socket, not yet taken by the kernel); skopeo then got a
 * FIN before Content-Length bytes: "happened during read: unexpected EOF". A client that
 * half-closed after its request lost the whole answer the same way.
 *
 * Self-contained (no outer names, no named inner functions) so that its source runs in the bridge.
 */
export function pipeSockets(a: Socket, b: Socket): void {
  if (!a.allowHalfOpen || !b.allowHalfOpen) throw new Error('pipeSockets needs allowHalfOpen sockets: one that closes its write half on a FIN loses the other direction');
  for (const [from, to] of [[a, b], [b, a]] as const) {
    // no Nagle: a small write (a request's head, then its body) would wait for the peer's delayed
    // ACK, ~40 ms a hop, where kube-proxy forwards packets as they come (a no-op on Unix sockets)
    from.setNoDelay(true);
    from.pipe(to);
    // an error destroys the socket; 'close' below then takes the other one down
    from.on('error', () => undefined);
    from.on('close', () => {
      if (!from.readableEnded || !from.writableFinished) to.destroy();
    });
  }
}

/**
 * A server that pipes each connection (pipeSockets) to where target() says; no target refuses it.
 * Every socket is in open while it lives.
 */
export function forwardingServer(open: Set<Socket>, target: () => Promise<NetConnectOpts | undefined> | NetConnectOpts | undefined): Server {
  const track = (socket: Socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  };
  return createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    track(client);
    client.on('error', () => client.destroy());
    Promise.resolve()
      .then(target)
      .then(
        (to) => {
          if (!to || client.destroyed) return client.destroy(); // no ready endpoint: refused, as kube-proxy's REJECT
          const upstream = connect({ ...to, allowHalfOpen: true });
          track(upstream);
          pipeSockets(client, upstream);
        },
        () => client.destroy(),
      );
  });
}
