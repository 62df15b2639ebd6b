// Which of the peer's stream numbers we have seen: everything below `floor`, plus a set above it. A peer
// opens its streams in order, so the set only holds the few whose OPEN overtook an earlier one; a number
// more than `span` past the floor is refused instead of growing the set.

export type IdMark = "new" | "seen" | "too_far";

export class IdWindow {
  private floor = 0;
  private readonly above = new Set<number>();

  constructor(private readonly span: number) {}

  seen(n: number): boolean {
    return n < this.floor || this.above.has(n);
  }

  mark(n: number): IdMark {
    if (this.seen(n)) return "seen";
    if (n - this.floor >= this.span) return "too_far";
    if (n === this.floor) {
      this.floor++;
      while (this.above.delete(this.floor)) this.floor++;
    } else {
      this.above.add(n);
    }
    return "new";
  }

  /** Numbers remembered individually (bounded by span). */
  get pending(): number {
    return this.above.size;
  }
}
