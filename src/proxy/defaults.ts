// The built-in proxy's defaults, apart from its code: run's option table needs them, and importing
// the proxy itself there would load it on every start (the door loads it while the sandbox is built).
export const DEFAULT_PROXY_PORT = 3128;
/** Seconds with no byte either way before a tunnel or request is ended. */
export const DEFAULT_IDLE_TIMEOUT_S = 300;
/** Client connections the proxy serves at once; more get 503. */
export const DEFAULT_MAX_CLIENTS = 256;
