// A run's websocket with automatic reconnect: it remembers the last seq it saw and asks the
// server to resume from there ({"since": seq} via the query string), so a dropped
// connection leaves no gap and no duplicate.

export class RunStream {
  constructor(runId, { onHello, onEvents, onStatus }) {
    this.runId = runId;
    this.lastSeq = 0;
    this.handlers = { onHello, onEvents, onStatus };
    this.retry = 250;
    this.closed = false;
    this.connect();
  }

  connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const url = `${proto}://${location.host}/ws/runs/${this.runId}?since=${this.lastSeq}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 250;
      this.handlers.onStatus("live");
    };
    ws.onmessage = (msg) => {
      const data = JSON.parse(msg.data);
      if (data.kind === "hello") {
        this.handlers.onHello(data);
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
