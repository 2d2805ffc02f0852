// The message of what `fn` throws, or '<no error>' when it does not throw.
export function errMsg(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  return '<no error>';
}
