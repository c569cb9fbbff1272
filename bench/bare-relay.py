# The floor for bench/policy.ts's CONNECT throughput: the least a user-space TCP relay can do on
# this machine, independent of proxywall's code. No HTTP, no policy, no event loop: per connection
# one blocking thread per direction moving socket -> 1 MiB pipe -> socket with splice(2), as
# proxywall's relay thread does. Usage: python3 bare-relay.py UPSTREAM_HOST UPSTREAM_PORT; prints
# {"port": N} (listening on 127.0.0.1) and exits when its stdin closes.
import fcntl, json, os, socket, sys, threading

F_SETPIPE_SZ = 1031
upstream = (sys.argv[1], int(sys.argv[2]))


def pump(src: socket.socket, dst: socket.socket) -> None:
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
    try:
        while (n := os.splice(src.fileno(), w, 1 << 20)) > 0:
            while n > 0:
                n -= os.splice(r, dst.fileno(), n)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        os.close(r)
        os.close(w)


def relay(client: socket.socket) -> None:
    with client, socket.create_connection(upstream) as up:
        for s in (client, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = threading.Thread(target=pump, args=(client, up), daemon=True)
        t.start()
        pump(up, client)
        t.join()


def serve(listener: socket.socket) -> None:
    while True:
        threading.Thread(target=relay, args=(listener.accept()[0],), daemon=True).start()


listener = socket.create_server(("127.0.0.1", 0))
threading.Thread(target=serve, args=(listener,), daemon=True).start()
print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
sys.stdin.read()
