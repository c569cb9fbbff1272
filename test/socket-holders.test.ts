// Who holds a socket (src/monitor/socket-holders.ts), on real processes: a shell and its child that
// inherited a UDP socket from this process as their stdin, and one that did not.
import { afterAll, describe, expect, test } from "bun:test";
import { readlinkSync } from "node:fs";
import { socketHolders } from "../src/monitor/socket-holders.ts";
import { libc } from "../src/sys/libc.ts";

const AF_INET = 2;
const SOCK_DGRAM = 2;

const fd = libc().socket(AF_INET, SOCK_DGRAM, 0);
const inode = Number(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))![1]);
// sh holds the socket as its stdin and passes it on to sleep as fd 3 (a background job's
// stdin is /dev/null).
const shell = Bun.spawn(["sh", "-c", "exec 3<&0; sleep 30 & wait"], { stdin: fd, stdout: "ignore" });
const bystander = Bun.spawn(["sleep", "30"], { stdin: "ignore", stdout: "ignore" });
let sleeperPid = 0;
afterAll(() => {
  if (sleeperPid > 0) process.kill(sleeperPid);
  shell.kill();
  bystander.kill();
  libc().close(fd);
});

/** The shell's child once it runs. */
async function sleeper(): Promise<number> {
  for (let i = 0; i < 200 && sleeperPid === 0; i++) {
    const r = Bun.spawnSync(["pgrep", "-P", String(shell.pid)]);
    sleeperPid = Number(r.stdout.toString().trim().split("\n")[0]) || 0;
    if (sleeperPid === 0) await Bun.sleep(10);
  }
  if (sleeperPid === 0) throw new Error("sh did not start sleep");
  return sleeperPid;
}

describe("socketHolders", () => {
  test("the first candidate that holds it, then its parent and its children that hold it too", async () => {
    const child = await sleeper();
    const all = () => true;
    expect(socketHolders([bystander.pid, shell.pid], [inode], all, (pid) => pid)).toEqual([shell.pid, process.pid, child]);
  });

  test("relatives outside the namespace (here: this process) are not asked", async () => {
    const child = await sleeper();
    expect(socketHolders([shell.pid], [inode], (pid) => pid !== process.pid, (pid) => `pid ${pid}`)).toEqual([`pid ${shell.pid}`, `pid ${child}`]);
  });

  test("no candidate holds it: nobody; an inode nobody has: nobody", () => {
    expect(socketHolders([bystander.pid], [inode], () => true, (pid) => pid)).toEqual([]);
    expect(socketHolders([shell.pid, process.pid], [4294967295], () => true, (pid) => pid)).toEqual([]);
  });

  test("a candidate that is gone is passed over", () => {
    expect(socketHolders([2 ** 22 + 1, shell.pid], [inode], () => true, (pid) => pid)[0]).toBe(shell.pid);
  });
});
