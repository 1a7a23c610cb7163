// The ring tone of the agent dashboard, made with WebAudio oscillators (no audio file): two
// tones mixed (400 Hz + 450 Hz) in a "ring-ring ... ring-ring" cadence, looped until stop().
//
// Browsers only let a page make sound after the user interacted with it. The dashboard calls
// unlock() from every click and key press (the login button included), so by the time a call
// rings the context normally runs. When it does not, the ringer reports "blocked" through
// onBlocked(true) and starts sounding as soon as a later gesture unlocks it.

const TONES = [400, 450]; // Hz
const PATTERN = [
  [0.0, 0.4], // on from 0 s to 0.4 s of each cycle
  [0.6, 1.0],
];
const CYCLE_S = 3.0;
const LEVEL = 0.12; // per oscillator, of full scale
const RAMP_S = 0.015; // soft edges: no clicks
const LOOKAHEAD_S = 1.5; // how far ahead the cadence is scheduled
const TICK_MS = 250;
const BLOCKED_CHECK_MS = 400;

export class Ringer {
  constructor({ onBlocked } = {}) {
    this.onBlocked = onBlocked || (() => {});
    this.context = null;
    this.voice = null; // {gain, oscillators} while ringing
    this.timer = null;
    this.blockedTimer = null;
    this.nextCycle = 0;
    this.blocked = false;
    this.ringing = false;
  }

  // The AudioContext, created on first use (null where WebAudio is missing).
  ensure() {
    if (this.context) return this.context;
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    try {
      this.context = new Context({ latencyHint: "interactive" });
    } catch {
      return null;
    }
    this.context.onstatechange = () => this.stateChanged();
    return this.context;
  }

  // Call from a user gesture: lets the ring sound later (or now, if it was blocked).
  unlock() {
    const context = this.ensure();
    if (context && context.state === "suspended") context.resume().catch(() => {});
  }

  get playing() {
    return this.ringing && !this.blocked;
  }

  start() {
    if (this.ringing) return;
    this.ringing = true;
    const context = this.ensure();
    if (!context) return this.setBlocked(true);
    const gain = context.createGain();
    gain.gain.value = 0;
    gain.connect(context.destination);
    const oscillators = TONES.map((frequency) => {
      const oscillator = context.createOscillator();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      oscillator.connect(gain);
      oscillator.start();
      return oscillator;
    });
    this.voice = { gain, oscillators };
    this.nextCycle = 0;
    this.schedule();
    this.timer = setInterval(() => this.schedule(), TICK_MS);
    if (context.state !== "running") {
      context.resume().catch(() => {});
      // resume() without a gesture stays pending; say so if it has not run shortly after.
      this.blockedTimer = setTimeout(() => {
        if (this.ringing && context.state !== "running") this.setBlocked(true);
      }, BLOCKED_CHECK_MS);
    }
  }

  stop() {
    if (!this.ringing) return;
    this.ringing = false;
    clearInterval(this.timer);
    clearTimeout(this.blockedTimer);
    this.timer = null;
    const voice = this.voice;
    this.voice = null;
    if (voice) {
      const now = this.context.currentTime;
      const level = voice.gain.gain;
      level.cancelScheduledValues(now);
      level.setValueAtTime(level.value, now);
      level.linearRampToValueAtTime(0, now + RAMP_S);
      for (const oscillator of voice.oscillators) {
        try {
          oscillator.stop(now + RAMP_S * 2);
        } catch {
          // already stopped
        }
      }
      setTimeout(() => voice.gain.disconnect(), 200);
    }
    this.setBlocked(false);
  }

  // Schedules the cadence up to LOOKAHEAD_S ahead of the context's clock.
  schedule() {
    const context = this.context;
    if (!this.voice || context.state !== "running") return;
    const now = context.currentTime;
    if (this.nextCycle < now) this.nextCycle = now + 0.05;
    const level = this.voice.gain.gain;
    while (this.nextCycle < now + LOOKAHEAD_S) {
      for (const [on, off] of PATTERN) {
        const start = this.nextCycle + on;
        const end = this.nextCycle + off;
        level.setValueAtTime(0, start);
        level.linearRampToValueAtTime(LEVEL, start + RAMP_S);
        level.setValueAtTime(LEVEL, end - RAMP_S);
        level.linearRampToValueAtTime(0, end);
      }
      this.nextCycle += CYCLE_S;
    }
  }

  stateChanged() {
    if (this.context.state === "running") {
      this.setBlocked(false);
      this.schedule();
    }
  }

  setBlocked(blocked) {
    if (this.blocked === blocked) return;
    this.blocked = blocked;
    this.onBlocked(blocked);
  }
}
