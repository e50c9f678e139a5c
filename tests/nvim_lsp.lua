-- Neovim's built-in LSP client against `specc lsp`, headless (tests/test_lsp.py): open SPEC_FILE,
-- wait for its diagnostics, ask for a hover at SPEC_LINE:SPEC_COL, write both to SPEC_OUT as JSON.
-- Written for Neovim 0.7 (Debian's package) and later: start_client and buf_attach_client.
local result = { diagnostics = vim.NIL, hover = vim.NIL, error = vim.NIL }
local function finish()
  local f = io.open(os.getenv("SPEC_OUT"), "w")
  f:write(vim.fn.json_encode(result))
  f:close()
  vim.cmd("qall!")
end
vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("SPEC_FILE")))
local bufnr = vim.api.nvim_get_current_buf()
local uri = vim.uri_from_bufnr(bufnr)
local client_id = vim.lsp.start_client({
  name = "specc",
  cmd = vim.fn.json_decode(os.getenv("SPEC_CMD")),
  root_dir = vim.fn.getcwd(),
  handlers = {
    ["textDocument/publishDiagnostics"] = function(_, params)
      if params.uri == uri then result.diagnostics = params.diagnostics end
    end,
  },
})
vim.lsp.buf_attach_client(bufnr, client_id)
if not vim.wait(20000, function() return result.diagnostics ~= vim.NIL end, 20) then
  result.error = "no diagnostics within 20 s"
  return finish()
end
local position = { line = tonumber(os.getenv("SPEC_LINE")), character = tonumber(os.getenv("SPEC_COL")) }
local responses = vim.lsp.buf_request_sync(bufnr, "textDocument/hover",
  { textDocument = { uri = uri }, position = position }, 20000)
for _, r in pairs(responses or {}) do
  if r.result then result.hover = r.result.contents.value end
  if r.err then result.error = r.err.message end
end
finish()
