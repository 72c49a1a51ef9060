/**
 * A cap on ECR requests in progress. Past the cap a request is refused at once (429 with
 * Retry-After) instead of queueing: a queue without bound only moves the overload into memory
 * and latency, and the client's retry logic already knows what to do with a 429.
 */
export class ConcurrencyGate {
  private active = 0;
  constructor(readonly limit: number) {}

  tryAcquire(): boolean {
    if (this.active >= this.limit) return false;
    this.active++;
    return true;
  }

  release(): void {
    if (this.active > 0) this.active--;
  }

  get inUse(): number {
    return this.active;
  }
}
