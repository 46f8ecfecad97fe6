// Durations of a test file's steps, printed at its end: `timed(what, work)` records how long work took.
export function stepTimer(): { timings: Record<string, number>; timed<T>(what: string, work: () => Promise<T>): Promise<T> } {
  const timings: Record<string, number> = {};
  return {
    timings,
    async timed(what, work) {
      const started = Date.now();
      try {
        return await work();
      } finally {
        timings[what] = Date.now() - started;
      }
    },
  };
}
