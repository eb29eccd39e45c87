// Renders this service's OpenAPI document (openapi.json) as a page: no framework, no CDN.
"use strict";
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}
function schemaText(schema) {
  if (!schema) return "";
  if (schema.enum) return schema.enum.join(" | ");
  if (schema.format === "binary") return "file";
  let text = schema.type || "";
  if (schema.minimum !== undefined || schema.maximum !== undefined)
    text += ` [${schema.minimum ?? ""}, ${schema.maximum ?? ""}]`;
  return text;
}
function paramTable(rows) {
  const table = el("table");
  const head = table.insertRow();
  ["field", "values", "what"].forEach((h) => head.appendChild(el("th", h)));
  rows.forEach(([name, schema, what]) => {
    const row = table.insertRow();
    row.insertCell().appendChild(el("code", name));
    row.insertCell().textContent = schemaText(schema);
    row.insertCell().textContent = what || "";
  });
  return table;
}
fetch("openapi.json").then((r) => r.json()).then((spec) => {
  document.title = spec.info.title;
  document.getElementById("title").textContent = spec.info.title;
  document.getElementById("description").textContent = spec.info.description || "";
  const root = document.getElementById("operations");
  root.textContent = "";
  Object.entries(spec.paths).forEach(([path, methods]) => {
    Object.entries(methods).forEach(([method, op]) => {
      const section = el("section");
      const title = el("h2");
      title.appendChild(el("span", method.toUpperCase(), "method"));
      title.appendChild(document.createTextNode(" " + path));
      section.appendChild(title);
      section.appendChild(el("p", op.summary));
      const rows = (op.parameters || []).map((p) => [p.name, p.schema, p.description]);
      const form = op.requestBody && op.requestBody.content["multipart/form-data"];
      if (form) Object.entries(form.schema.properties).forEach(([name, schema]) => {
        if (schema.format === "binary") rows.unshift([name, schema, "file part"]);
      });
      if (rows.length) section.appendChild(paramTable(rows));
      const answers = Object.entries(op.responses)
        .map(([code, r]) => `${code}: ${r.description} (${Object.keys(r.content || {}).join(", ")})`);
      const list = el("ul");
      answers.forEach((a) => list.appendChild(el("li", a)));
      section.appendChild(list);
      root.appendChild(section);
    });
  });
}).catch((err) => {
  document.getElementById("operations").textContent = "Could not load openapi.json: " + err;
});
