// BENCH_SMOKE=1 is every bench's short mode: the same code path end to end, with short runs and small sizes, so
// CI proves each bench still runs and prints its table (test/bench/smoke.test.ts). Its figures mean little.
// A knob set in the environment wins over both modes.

export const SMOKE = process.env.BENCH_SMOKE === "1";

/**
 * The number the environment variable `name` holds; unset, `smoke` in the short mode and `full` otherwise.
 * A value that is not a number >= min ends the bench with a one-line error naming the variable.
 */
export function knob(name: string, full: number, smoke: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return SMOKE ? smoke : full;
  const value = Number(raw);
  if (Number.isFinite(value) && value >= min) return value;
  console.error(`bench: ${name}=${raw} is not a number >= ${min}; unset it for the default (${SMOKE ? smoke : full})`);
  process.exit(2);
}
