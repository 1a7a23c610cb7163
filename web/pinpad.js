// The PIN pad: its buttons type into the #pin input, which stays the masked display and
// still takes keyboard entry. Only digits are kept, at most `maxLength` of them.
export function attachPinPad(pad, input) {
  const keep = () => {
    const digits = input.value.replace(/\D/g, "").slice(0, input.maxLength);
    if (digits !== input.value) input.value = digits;
  };
  input.addEventListener("input", keep);
  pad.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-key]");
    if (!button) return;
    const key = button.dataset.key;
    if (key === "clear") input.value = "";
    else if (key === "back") input.value = input.value.slice(0, -1);
    else input.value += key;
    keep();
    input.setCustomValidity("");
  });
  // Keep the focus where it was: tapping a pad button must not pop up the phone keyboard.
  pad.addEventListener("mousedown", (event) => event.preventDefault());
}
