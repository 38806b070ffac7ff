// Preloaded into zero-cache's processes (NODE_OPTIONS=--import): its servers listen on
// ZERO_BIND_HOST (default 127.0.0.1) instead of every interface ("::").
import net from "node:net";

const host = process.env.ZERO_BIND_HOST || "127.0.0.1";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const [first] = args;
  if (typeof first === "object" && first !== null && !Array.isArray(first) && "port" in first) {
    args[0] = { ...first, host };
  } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (typeof args[1] === "string") args[1] = host;
    else args.splice(1, 0, host);
  }
  return listen.apply(this, args);
};
