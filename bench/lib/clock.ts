/** Monotonic clock in ns (uv_hrtime = CLOCK_MONOTONIC, the clock readloop prints). */
export const monoNs = (): bigint => process.hrtime.bigint();
