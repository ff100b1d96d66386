// Typed event maps: EventEmitter whose on/once/off/emit/... know the events of
// the class, described by an interface such as ChannelEvents ({ message: [Message] }).
// A misspelt event name or a listener of the wrong shape fails to compile.
import { EventEmitter } from 'node:events';

/** EventEmitter's own events, which every emitter has. */
export interface EmitterEvents {
  newListener: [eventName: string | symbol, listener: (...args: never[]) => unknown];
  removeListener: [eventName: string | symbol, listener: (...args: never[]) => unknown];
}

/** The listener of event `E` of the event map `Events`. */
export type Listener<Events extends EventMap<Events>, E extends keyof Events> = (...args: Events[E]) => void;

/** An event map: each event name to the tuple of its listener's arguments. */
export type EventMap<Events> = { [E in keyof Events]: unknown[] };

type Typed = 'on' | 'once' | 'off' | 'addListener' | 'removeListener' | 'prependListener' | 'prependOnceListener' | 'emit';

/** An EventEmitter whose listener methods are typed by `Events`. */
export interface TypedEmitter<Events extends EventMap<Events>> extends Omit<EventEmitter, Typed> {
  on<E extends keyof Events>(event: E, listener: Listener<Events, E>): this;
  once<E extends keyof Events>(event: E, listener: Listener<Events, E>): this;
  off<E extends keyof Events>(event: E, listener: Listener<Events, E>): this;
  addListener<E extends keyof Events>(event: E, listener: Listener<Events, E>): this;
  removeListener<E extends keyof Events>(event: E, listener: Listener<Events, E>): this;
  prependListener<E extends keyof Events>(event: E, listener: Listener<Events, E>): this;
  prependOnceListener<E extends keyof Events>(event: E, listener: Listener<Events, E>): this;
  emit<E extends keyof Events>(event: E, ...args: Events[E]): boolean;
}

/** EventEmitter itself, typed: `class Channel extends TypedEventEmitter<ChannelEvents>`. */
export const TypedEventEmitter = EventEmitter as unknown as new <Events extends EventMap<Events>>() => TypedEmitter<Events>;
