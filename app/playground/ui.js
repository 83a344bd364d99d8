// Small DOM helpers shared by the panels, and the one place errors are shown.

export const $ = (selector) => document.querySelector(selector);

// A new element with attributes and children (strings become text, never HTML).
export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function debounce(action, delayMs) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => action(...args), delayMs);
  };
}

// For a panel that shows the answer to its latest request: each call of the returned function
// starts a request and gives a check that stays true until a later one starts, so a slow, older
// answer never replaces a newer one.
export function latestRequest() {
  let latest = 0;
  return () => {
    const mine = ++latest;
    return () => mine === latest;
  };
}

// The non-null values of an enum in an OpenAPI property.
export function schemaEnum(property) {
  return (property.enum || []).filter((value) => value !== null);
}

export function money(usd) {
  return usd === null || usd === undefined ? "price unknown" : `$${usd.toFixed(4)}`;
}

export function milliseconds(ms) {
  if (ms === null || ms === undefined) return "latency unknown";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

// Show an API problem's title and detail (or any error's message) until the next action.
export function showError(error) {
  const box = $("#error");
  const problem = error.problem;
  box.replaceChildren(
    element("strong", {}, problem ? problem.title : "Something went wrong"),
    " ",
    problem ? problem.detail : error.message,
  );
  box.hidden = false;
}

export function clearError() {
  $("#error").hidden = true;
}
