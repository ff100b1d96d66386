// Typed event maps: the listener type of one event of an emitter whose events
// are described by an interface such as ChannelEvents ({ message: [Message] }).
// Classes merge an interface declaring on/once/off/... over their map, so a
// misspelt event name or a listener of the wrong shape fails to compile.

/** EventEmitter's own events, which every emitter has. */
export interface EmitterEvents {
  newListener: [eventName: string | symbol, listener: (...args: never[]) => unknown];
  removeListener: [eventName: string | symbol, listener: (...args: never[]) => unknown];
}

/** The listener of event `E` of the event map `Events`. */
export type Listener<Events, E extends keyof Events> = Events[E] extends unknown[] ? (...args: Events[E]) => void : never;
