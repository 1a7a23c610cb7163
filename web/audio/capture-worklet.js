// Audio thread, microphone side: cuts the input into 20 ms frames (320 samples at the
// context's 16 kHz) of 16-bit little-endian PCM and posts each to the page as
// {pcm: ArrayBuffer(640 bytes), rms: 0..1}. The buffer is transferred, not copied.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.frameSamples = options?.processorOptions?.frameSamples ?? 320;
    this.newFrame();
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data === "stop") this.running = false;
    };
  }

  newFrame() {
    this.view = new DataView(new ArrayBuffer(this.frameSamples * 2));
    this.filled = 0;
    this.sumSquares = 0;
  }

  process(inputs) {
    const samples = inputs[0]?.[0]; // mono: the first channel
    if (samples) {
      for (let i = 0; i < samples.length; i++) {
        const sample = Math.max(-1, Math.min(1, samples[i]));
        this.sumSquares += sample * sample;
        this.view.setInt16(this.filled * 2, Math.round(sample * 32767), true);
        if (++this.filled === this.frameSamples) {
          const rms = Math.sqrt(this.sumSquares / this.frameSamples);
          const pcm = this.view.buffer;
          this.port.postMessage({ pcm, rms }, [pcm]);
          this.newFrame();
        }
      }
    }
    return this.running;
  }
}

registerProcessor("convonet-capture", CaptureProcessor);
