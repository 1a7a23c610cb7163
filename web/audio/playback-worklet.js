// Audio thread, speaker side: plays reply audio frames back to back from a queue.
//
// Messages in:  {type: "push", turnKey, pcm: ArrayBuffer (Int16 LE), rate, maxQueued?}
//                 maxQueued (samples): live audio (a call with an agent) never lags behind
//                 by more than this; the oldest queued audio is dropped instead
//               {type: "end", turnKey}   no more frames for this turn: play what is queued
//               {type: "flush"}          drop everything queued, stop now (barge-in)
// Messages out: {type: "started", turnKey}
//               {type: "progress", turnKey, turnSamples, framesPlayed, peakRms, dropped}
//                 per frame played; dropped counts samples shed by maxQueued
//               {type: "drained", turnKey, turnSamples}   the queue ran empty
//               {type: "flushed", turnKey, turnSamples}
// When the queue is empty the output is silence. Playback starts once PREBUFFER samples are
// queued (or the turn has ended), so network jitter does not cut the first words short.
const PREBUFFER = 640; // 40 ms at 16 kHz

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // [{samples: Float32Array, offset, turnKey}]
    this.queued = 0;
    this.playing = false;
    this.endedTurn = null;
    this.turnKey = null; // the turn whose audio is (or was last) playing
    this.turnSamples = 0;
    this.framesPlayed = 0;
    this.peakRms = 0;
    this.dropped = 0;
    this.port.onmessage = (event) => this.command(event.data);
  }

  command(message) {
    if (message.type === "push") {
      const samples = toFloat(new Int16Array(message.pcm), message.rate || sampleRate);
      this.queue.push({ samples, offset: 0, turnKey: message.turnKey });
      this.queued += samples.length;
      const limit = message.maxQueued;
      while (limit > 0 && this.queued > limit && this.queue.length > 1) {
        const oldest = this.queue.shift();
        const left = oldest.samples.length - oldest.offset;
        this.queued -= left;
        this.dropped += left;
      }
    } else if (message.type === "end") {
      this.endedTurn = message.turnKey;
      if (!this.playing && this.queued === 0) {
        // Everything of the turn has been played already.
        const turnSamples = this.turnKey === message.turnKey ? this.turnSamples : 0;
        this.port.postMessage({ type: "drained", turnKey: message.turnKey, turnSamples });
      }
    } else if (message.type === "flush") {
      this.queue = [];
      this.queued = 0;
      this.playing = false;
      this.port.postMessage({ type: "flushed", turnKey: this.turnKey, turnSamples: this.turnSamples });
    }
  }

  process(_inputs, outputs) {
    const channels = outputs[0];
    const out = channels[0];
    if (!this.playing && this.queued > 0) {
      const last = this.queue[this.queue.length - 1].turnKey;
      if (this.queued >= PREBUFFER || this.endedTurn === last) {
        this.playing = true;
        this.port.postMessage({ type: "started", turnKey: this.queue[0].turnKey });
      }
    }
    let written = 0;
    let sumSquares = 0;
    let finished = 0;
    while (this.playing && written < out.length && this.queue.length > 0) {
      const chunk = this.queue[0];
      if (chunk.turnKey !== this.turnKey) {
        this.turnKey = chunk.turnKey;
        this.turnSamples = 0;
      }
      const count = Math.min(out.length - written, chunk.samples.length - chunk.offset);
      for (let i = 0; i < count; i++) {
        const sample = chunk.samples[chunk.offset + i];
        out[written + i] = sample;
        sumSquares += sample * sample;
      }
      written += count;
      chunk.offset += count;
      this.queued -= count;
      this.turnSamples += count;
      if (chunk.offset === chunk.samples.length) {
        this.queue.shift();
        finished += 1;
      }
    }
    out.fill(0, written);
    if (written > 0) this.peakRms = Math.max(this.peakRms, Math.sqrt(sumSquares / written));
    if (finished > 0) {
      this.framesPlayed += finished;
      this.port.postMessage({
        type: "progress",
        turnKey: this.turnKey,
        turnSamples: this.turnSamples,
        framesPlayed: this.framesPlayed,
        peakRms: this.peakRms,
        dropped: this.dropped,
      });
    }
    if (this.playing && this.queue.length === 0) {
      this.playing = false;
      this.port.postMessage({ type: "drained", turnKey: this.turnKey, turnSamples: this.turnSamples });
    }
    for (let c = 1; c < channels.length; c++) channels[c].set(out);
    return true;
  }
}

// Int16 PCM to Float32 at the context's rate (linear interpolation if the rates differ).
function toFloat(int16, rate) {
  const floats = Float32Array.from(int16, (value) => value / 32768);
  if (rate === sampleRate) return floats;
  const length = Math.max(1, Math.round((floats.length * sampleRate) / rate));
  const out = new Float32Array(length);
  const step = rate / sampleRate;
  for (let i = 0; i < length; i++) {
    const position = i * step;
    const index = Math.min(Math.floor(position), floats.length - 1);
    const next = floats[Math.min(index + 1, floats.length - 1)];
    out[i] = floats[index] + (next - floats[index]) * (position - index);
  }
  return out;
}

registerProcessor("convonet-playback", PlaybackProcessor);
