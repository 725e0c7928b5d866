// A run's websocket with automatic reconnect: it remembers the last seq it saw and asks the
// server to resume from there ({"since": seq} via the query string), so a dropped
// connection leaves no gap and no duplicate.
//
// The hello of a server that sends `history` (the run so far, bucketed) and `frame` (every
// panel's state at the head) is followed only by live events (seq > hello.last_seq): the
// stream counts the hello's last_seq as seen, so a reconnect asks only for what came after.
// An older server replays every event after the hello instead; both work.

export class RunStream {
  constructor(runId, { onHello, onEvents, onStatus }) {
    this.runId = runId;
    this.lastSeq = 0;
    this.hellos = 0; // a reconnect's hello is not the first: the page is seeded already
    this.handlers = { onHello, onEvents, onStatus };
    this.retry = 250;
    this.closed = false;
    this.connect();
  }

  connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    this.since = this.lastSeq;
    const url = `${proto}://${location.host}/ws/runs/${this.runId}?since=${this.since}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 250;
      this.handlers.onStatus("live");
    };
    ws.onmessage = (msg) => {
      const data = JSON.parse(msg.data);
      if (data.kind === "hello") {
        const first = this.hellos++ === 0;
        // Connected with since=0, what follows starts after the hello's last_seq. A reconnect
        // (since=k) gets everything after k: its hello's last_seq says nothing of what we saw.
        if (this.since === 0 && "history" in data) this.lastSeq = Math.max(this.lastSeq, data.last_seq || 0);
        this.handlers.onHello(data, first);
      } else if (data.kind === "events") {
        const fresh = data.events.filter((e) => e.seq > this.lastSeq);
        if (fresh.length) {
          this.lastSeq = fresh[fresh.length - 1].seq;
          this.handlers.onEvents(fresh);
        }
      }
    };
    ws.onclose = (ev) => {
      if (this.closed) return;
      if (ev.code === 4404) {
        this.closed = true;
        this.handlers.onStatus("gone");
        return;
      }
      this.handlers.onStatus("reconnecting");
      setTimeout(() => this.connect(), this.retry);
      this.retry = Math.min(this.retry * 2, 5000);
    };
  }

  close() {
    this.closed = true;
    this.ws.close();
  }
}
