/**
 * A FIFO with O(1) push, shift and unshift: a growing array and a head index
 * (Array.prototype.shift is O(n) on long arrays, and the broker's queues get long).
 *
 * @module
 */
export class Deque<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** The first item, or undefined when empty. */
  peek(): T | undefined {
    return this.#items[this.#head];
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    // Reclaim the dead prefix once it is half the array.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  unshift(item: T): void {
    if (this.#head > 0) this.#items[--this.#head] = item;
    else this.#items.unshift(item);
  }

  /** Takes out the items that match, keeping the others in order; returns those taken. */
  removeWhere(match: (item: T) => boolean): T[] {
    const taken: T[] = [], kept: T[] = [];
    for (const item of this) (match(item) ? taken : kept).push(item);
    this.#items = kept;
    this.#head = 0;
    return taken;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) yield this.#items[i] as T;
  }
}
