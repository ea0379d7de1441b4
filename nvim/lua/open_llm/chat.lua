--- The chat buffer: a Markdown transcript of one chat with a prompt area at the bottom.
---
--- Layout (one scratch buffer per chat, named openllm://chat/<id>):
---
---   # <title>
---
---   ### You
---   <question>
---
---   ### Assistant                 <- per-answer stats as virtual text
---   <answer, streamed from openLlm/chat/delta>
---
---   ---                           <- the separator (an extmark keeps track of it)
---   <prompt: what you type here is sent with <CR> in normal mode>
local lsp = require('open_llm.lsp')
local status = require('open_llm.status')

local M = {}

local api = vim.api
local ns = api.nvim_create_namespace('open_llm.chat')
local ns_stats = api.nvim_create_namespace('open_llm.chat.stats')
M.ns = ns
M.ns_stats = ns_stats

---@class open_llm.ChatState
---@field bufnr integer
---@field chat_id string|nil nil until the first message creates the chat
---@field title string
---@field messages table[] the active branch (as from openLlm/chat/get)
---@field attachments table[] pending attachments ({uri, range?, label})
---@field stream table|nil the answer being generated
---@field sep integer extmark id of the separator line
---@field loading boolean

---@type table<integer, open_llm.ChatState>
M.states = {}
--- request id -> state of the answer streaming under it
local by_request = {}
--- The chat :OpenLlmChat opens (the last one used in this session).
M.current_chat = nil

local SEP = '---'
local NEW_TITLE = 'New chat'

local function options()
  return require('open_llm.config').options.chat
end

local function request_id()
  return ('nvim-%d-%06x'):format(vim.uv.hrtime() % 1e12, math.random(0, 0xffffff))
end

local function split_lines(text)
  return vim.split(text or '', '\n', { plain = true })
end

--- Short stats text: "42 tokens · 61.3 tok/s · first token 220 ms · stop: eos".
---@param stats table GenerationStats or stored MessageStats
---@param incomplete boolean|nil
---@return string
function M.stats_text(stats, incomplete)
  local parts = {}
  local tokens = stats.generatedTokens or stats.completionTokens
  if tokens then
    table.insert(parts, ('%d tokens'):format(tokens))
  end
  local tps = stats.tokensPerS
  if type(tps) == 'number' and tps > 0 then
    table.insert(parts, ('%.1f tok/s'):format(tps))
  end
  local ttft = stats.firstTokenMs or stats.ttftMs
  if type(ttft) == 'number' then
    table.insert(parts, ('first token %d ms'):format(ttft))
  end
  if type(stats.stopReason) == 'string' then
    table.insert(parts, 'stop: ' .. stats.stopReason)
  end
  if incomplete then
    table.insert(parts, 'incomplete')
  end
  return table.concat(parts, ' · ')
end

local function attachment_label(att)
  local path = att.path or att.name or (att.uri and vim.uri_to_fname(att.uri)) or '?'
  path = vim.fn.fnamemodify(path, ':~:.')
  local range = att.range
  if type(range) == 'table' and range.start then
    return ('%s, lines %d-%d'):format(path, range.start.line + 1, range['end'].line + 1)
  end
  return path
end

local function sep_row(state)
  if not state.sep then
    return nil
  end
  local pos = api.nvim_buf_get_extmark_by_id(state.bufnr, ns, state.sep, {})
  if pos[1] == nil then
    return nil
  end
  return pos[1]
end

--- The prompt lines (below the separator).
local function prompt_lines(state)
  local row = sep_row(state)
  if not row then
    return {}
  end
  return api.nvim_buf_get_lines(state.bufnr, row + 1, -1, false)
end

local function place_separator(state, row)
  local hints = {}
  local keys = options().keymaps
  if keys.send then
    table.insert(hints, keys.send .. ' sends')
  end
  if keys.stop then
    table.insert(hints, keys.stop .. ' stops')
  end
  local virt_lines = {}
  for _, att in ipairs(state.attachments) do
    table.insert(
      virt_lines,
      { { 'attached: ' .. (att.label or attachment_label(att)), 'Special' } }
    )
  end
  state.sep = api.nvim_buf_set_extmark(state.bufnr, ns, row, 0, {
    id = state.sep,
    virt_text = { { ' your message below · ' .. table.concat(hints, ' · '), 'Comment' } },
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    right_gravity = false,
  })
end

--- The lines of one message, and the row offsets of its parts.
local function message_lines(msg)
  local lines = {}
  local role = msg.role == 'user' and 'You' or msg.role == 'assistant' and 'Assistant' or 'System'
  table.insert(lines, '### ' .. role)
  if msg.role == 'assistant' then
    vim.list_extend(lines, M.answer_lines(msg))
  else
    if msg.content and msg.content ~= '' then
      vim.list_extend(lines, split_lines(msg.content))
    end
    for _, att in ipairs(msg.attachments or {}) do
      table.insert(lines, '> attached: ' .. attachment_label(att))
    end
  end
  table.insert(lines, '')
  return lines
end

--- Lines shown for an answer: its thinking (quoted) then its text.
---@param msg table
---@return string[]
function M.answer_lines(msg)
  local lines = {}
  if msg.thinking and msg.thinking ~= '' then
    for _, l in ipairs(split_lines(msg.thinking)) do
      table.insert(lines, '> ' .. l)
    end
    table.insert(lines, '')
  end
  if msg.error then
    table.insert(lines, '> **Error:** ' .. msg.error)
  elseif msg.content == '' and msg.pending then
    table.insert(lines, '…')
  else
    vim.list_extend(lines, split_lines(msg.content or ''))
  end
  return lines
end

local function set_stats(state, row, msg)
  if not options().show_stats or not msg.stats then
    return
  end
  local text = M.stats_text(msg.stats, msg.incomplete)
  if text ~= '' then
    api.nvim_buf_set_extmark(state.bufnr, ns_stats, row, 0, {
      virt_text = { { '  ' .. text, 'Comment' } },
      virt_text_pos = 'eol',
    })
  end
end

--- Draw the transcript above the separator (the prompt below it is kept).
---@param state open_llm.ChatState
function M.render(state)
  local bufnr = state.bufnr
  if not api.nvim_buf_is_valid(bufnr) then
    return
  end
  local row = sep_row(state)
  -- First render (no separator yet): the whole buffer becomes the transcript and an empty
  -- prompt line; later ones replace everything down to the separator.
  local last = row and row + 1 or api.nvim_buf_line_count(bufnr)
  local lines = { '# ' .. (state.title or NEW_TITLE), '' }
  local headings = {}
  for _, msg in ipairs(state.messages) do
    if msg.role == 'assistant' then
      headings[#lines] = msg
      msg._heading = #lines
    end
    vim.list_extend(lines, message_lines(msg))
  end
  if state.loading then
    table.insert(lines, '(loading…)')
    table.insert(lines, '')
  end
  table.insert(lines, SEP)
  if not row then
    table.insert(lines, '')
  end
  api.nvim_buf_clear_namespace(bufnr, ns_stats, 0, -1)
  for _, mark in ipairs(api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, {})) do
    if mark[1] ~= state.sep then
      api.nvim_buf_del_extmark(bufnr, ns, mark[1])
    end
  end
  api.nvim_buf_set_lines(bufnr, 0, last, false, lines)
  local new_sep = #lines - (row and 1 or 2)
  place_separator(state, new_sep)
  for heading_row, msg in pairs(headings) do
    set_stats(state, heading_row, msg)
  end
  vim.bo[bufnr].modified = false
end

--- Redraw only the answer being streamed (cheap, called for every delta).
local function render_answer(state)
  local msg = state.stream and state.stream.message
  local row = sep_row(state)
  if not msg or not row or not msg._mark then
    return M.render(state)
  end
  local pos = api.nvim_buf_get_extmark_by_id(state.bufnr, ns, msg._mark, {})
  if not pos[1] then
    return M.render(state)
  end
  -- The answer runs from the line below its heading to the blank line above the separator.
  api.nvim_buf_set_lines(state.bufnr, pos[1] + 1, row - 1, false, M.answer_lines(msg))
  vim.bo[state.bufnr].modified = false
  -- Windows that do not have the cursor in the prompt follow the answer.
  for _, win in ipairs(vim.fn.win_findbuf(state.bufnr)) do
    if win ~= api.nvim_get_current_win() then
      pcall(api.nvim_win_set_cursor, win, { api.nvim_buf_line_count(state.bufnr), 0 })
    end
  end
end

local function mark_heading(state, msg)
  if msg._heading then
    msg._mark = api.nvim_buf_set_extmark(state.bufnr, ns, msg._heading, 0, {})
  end
end

local function buf_name(chat_id)
  return chat_id and ('openllm://chat/' .. chat_id) or ('openllm://chat/new-' .. math.random(1e6))
end

local function set_keymaps(bufnr)
  local keys = options().keymaps
  local function map(modes, lhs, fn, desc)
    if lhs then
      vim.keymap.set(modes, lhs, fn, { buffer = bufnr, desc = 'Open LLM: ' .. desc })
    end
  end
  map('n', keys.send, function()
    M.send(bufnr)
  end, 'send the message')
  map({ 'n', 'i' }, keys.stop, function()
    M.stop(bufnr)
  end, 'stop the answer')
  map('n', keys.new_chat, function()
    M.open_new()
  end, 'new chat')
  map('n', keys.chats, function()
    require('open_llm.pickers').chats()
  end, 'chats')
end

--- Create a chat buffer (not shown yet).
---@param chat_id string|nil
---@return open_llm.ChatState
local function new_state(chat_id)
  local bufnr = api.nvim_create_buf(false, true)
  vim.bo[bufnr].buftype = 'nofile'
  vim.bo[bufnr].bufhidden = 'hide'
  vim.bo[bufnr].swapfile = false
  pcall(api.nvim_buf_set_name, bufnr, buf_name(chat_id))
  vim.bo[bufnr].filetype = 'markdown'
  ---@type open_llm.ChatState
  local state = {
    bufnr = bufnr,
    chat_id = chat_id,
    title = NEW_TITLE,
    messages = {},
    attachments = {},
    stream = nil,
    sep = nil,
    loading = chat_id ~= nil,
  }
  M.states[bufnr] = state
  api.nvim_create_autocmd('BufWipeout', {
    buffer = bufnr,
    once = true,
    callback = function()
      M.states[bufnr] = nil
    end,
  })
  set_keymaps(bufnr)
  M.render(state)
  return state
end

---@param chat_id string|nil
---@return open_llm.ChatState|nil
local function find_state(chat_id)
  for _, state in pairs(M.states) do
    if state.chat_id == chat_id and api.nvim_buf_is_valid(state.bufnr) then
      return state
    end
  end
end

--- Show a chat buffer in the chat window (reused when one is open in this tab page).
---@param state open_llm.ChatState
function M.show(state)
  local opts = options()
  local target
  for _, win in ipairs(api.nvim_tabpage_list_wins(0)) do
    if M.states[api.nvim_win_get_buf(win)] then
      target = win
      break
    end
  end
  if target then
    api.nvim_set_current_win(target)
    api.nvim_win_set_buf(target, state.bufnr)
  elseif opts.split == 'current' then
    api.nvim_win_set_buf(0, state.bufnr)
  elseif opts.split == 'tab' then
    vim.cmd.tabnew()
    local scratch = api.nvim_get_current_buf()
    api.nvim_win_set_buf(0, state.bufnr)
    if scratch ~= state.bufnr and api.nvim_buf_is_valid(scratch) then
      pcall(api.nvim_buf_delete, scratch, {})
    end
  else
    local vertical = opts.split == 'right' or opts.split == 'left'
    local size = opts.size or math.floor((vertical and vim.o.columns or vim.o.lines) / 2)
    api.nvim_open_win(state.bufnr, true, {
      split = opts.split,
      win = -1,
      width = vertical and size or nil,
      height = (not vertical) and size or nil,
    })
  end
  local win = api.nvim_get_current_win()
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.wo[win].number = false
  vim.wo[win].relativenumber = false
  vim.wo[win].conceallevel = 2
  api.nvim_win_set_cursor(win, { api.nvim_buf_line_count(state.bufnr), 0 })
end

--- Fill a state from openLlm/chat/get.
local function load(state, cb)
  state.loading = true
  lsp.request(lsp.methods.chat_get, { chatId = state.chat_id }, function(err, result)
    state.loading = false
    if err then
      lsp.report('could not open the chat', err)
    elseif not state.stream then
      state.title = result.chat.title
      state.messages = result.messages or {}
    end
    if api.nvim_buf_is_valid(state.bufnr) then
      M.render(state)
    end
    if cb then
      cb(state, err)
    end
  end)
end

--- Open a stored chat in the chat window.
---@param chat_id string
---@param cb fun(state: open_llm.ChatState, err: table|nil)|nil called once it is loaded
function M.open(chat_id, cb)
  local state = find_state(chat_id) or new_state(chat_id)
  M.current_chat = chat_id
  M.show(state)
  if state.stream then
    if cb then
      cb(state, nil)
    end
  else
    load(state, cb)
  end
  return state
end

--- Open an empty chat (created on the server by its first message).
---@return open_llm.ChatState
function M.open_new()
  local state = find_state(nil) or new_state(nil)
  M.current_chat = nil
  M.show(state)
  return state
end

--- :OpenLlmChat: the current chat, else the most recently updated one, else a new chat.
---@param cb fun(state: open_llm.ChatState)|nil
function M.open_current(cb)
  local function done(state)
    if cb then
      cb(state)
    end
  end
  if M.current_chat then
    M.open(M.current_chat, done)
    return
  end
  local pending = find_state(nil)
  if pending then
    M.show(pending)
    return done(pending)
  end
  lsp.request(lsp.methods.chat_list, { limit = 1 }, function(err, result)
    local item = not err and result and result.items and result.items[1]
    if item then
      M.open(item.id, done)
    else
      done(M.open_new())
    end
  end)
end

local function finish(state, msg)
  local stream = state.stream
  if not stream then
    return
  end
  by_request[stream.request_id] = nil
  status.stream_done(stream.request_id)
  state.stream = nil
  state.last_stream = {
    request_id = stream.request_id,
    deltas = stream.deltas,
    partial_seen = stream.partial_seen,
  }
  msg.pending = nil
  M.render(state)
  mark_heading(state, msg)
  api.nvim_exec_autocmds('User', {
    pattern = 'OpenLlmChatDone',
    modeline = false,
    data = { bufnr = state.bufnr, chat_id = state.chat_id, message = msg },
  })
end

local function start_answer(state, content, attachments)
  local rid = request_id()
  local user = { role = 'user', content = content, attachments = {} }
  for _, att in ipairs(attachments) do
    table.insert(user.attachments, { uri = att.uri, range = att.range })
  end
  local answer = { role = 'assistant', content = '', thinking = '', pending = true }
  table.insert(state.messages, user)
  table.insert(state.messages, answer)
  state.stream = { request_id = rid, message = answer, deltas = 0, partial_seen = false }
  by_request[rid] = state
  status.stream_started(rid)
  M.render(state)
  mark_heading(state, answer)

  local params = {
    chatId = state.chat_id,
    content = content,
    requestId = rid,
    attachments = #attachments > 0 and vim.tbl_map(function(att)
      return { uri = att.uri, range = att.range }
    end, attachments) or nil,
    sampling = options().sampling,
  }
  lsp.request(lsp.methods.chat_send, params, function(err, result)
    if not state.stream or state.stream.request_id ~= rid then
      return
    end
    if err then
      answer.error = lsp.error_text(err)
      if answer.content ~= '' then
        answer.incomplete = true
        answer.error = nil
      end
    else
      answer.content = result.text or answer.content
      answer.thinking = result.thinking or answer.thinking
      answer.stats = result.stats or answer.stats
      answer.incomplete = result.incomplete
      answer.id = result.message and result.message.id
      if result.userMessage then
        user.id = result.userMessage.id
      end
      if result.title and result.title ~= '' then
        state.title = result.title
      end
      if result.notice then
        answer.content = answer.content .. '\n\n> ' .. result.notice
      end
    end
    finish(state, answer)
  end)
end

--- Send what is typed below the separator (with pending attachments).
---@param bufnr integer|nil
function M.send(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local state = M.states[bufnr]
  if not state then
    return
  end
  if state.stream then
    vim.notify('open_llm: an answer is being generated; stop it first', vim.log.levels.WARN)
    return
  end
  local content = vim.trim(table.concat(prompt_lines(state), '\n'))
  if content == '' and #state.attachments == 0 then
    vim.notify('open_llm: type your message below the line, then send', vim.log.levels.WARN)
    return
  end
  local attachments = state.attachments
  state.attachments = {}
  local row = sep_row(state)
  if row then
    api.nvim_buf_set_lines(bufnr, row + 1, -1, false, { '' })
  end
  if state.chat_id then
    start_answer(state, content, attachments)
    return
  end
  lsp.request(lsp.methods.chat_create, vim.empty_dict(), function(err, chat)
    if err then
      lsp.report('could not create the chat', err)
      state.attachments = attachments
      local sep = sep_row(state)
      if sep and api.nvim_buf_is_valid(bufnr) then
        api.nvim_buf_set_lines(bufnr, sep + 1, -1, false, split_lines(content))
      end
      return
    end
    state.chat_id = chat.id
    state.title = chat.title
    M.current_chat = chat.id
    pcall(api.nvim_buf_set_name, bufnr, buf_name(chat.id))
    start_answer(state, content, attachments)
  end)
end

--- Stop the answer being generated in this chat (openLlm/chat/cancel).
---@param bufnr integer|nil
function M.stop(bufnr)
  local state = M.states[bufnr or api.nvim_get_current_buf()]
  if not state or not state.stream then
    return
  end
  local params = state.chat_id and { chatId = state.chat_id }
    or { requestId = state.stream.request_id }
  lsp.request(lsp.methods.chat_cancel, params, function(err)
    if err then
      lsp.report('could not stop the answer', err)
    end
  end)
end

--- openLlm/chat/delta: append to the streaming answer.
---@param params table
function M.on_delta(params)
  local state = type(params) == 'table' and by_request[params.requestId]
  if not state or not state.stream or not api.nvim_buf_is_valid(state.bufnr) then
    return
  end
  local msg = state.stream.message
  local changed = false
  if type(params.delta) == 'string' and params.delta ~= '' then
    msg.content = msg.content .. params.delta
    changed = true
  end
  if type(params.thinking) == 'string' and params.thinking ~= '' then
    msg.thinking = (msg.thinking or '') .. params.thinking
    changed = true
  end
  state.stream.deltas = state.stream.deltas + 1
  status.stream_progress(state.stream.request_id)
  if params.done then
    msg.stats = params.stats
    msg.incomplete = params.incomplete
  end
  if changed then
    msg.pending = nil
    render_answer(state)
    state.stream.partial_seen = true
  end
end

--- openLlm/chat/changed: a generated title (or a chat the server created).
---@param params table
function M.on_changed(params)
  if type(params) ~= 'table' then
    return
  end
  local state = find_state(params.chatId)
  if state and params.title and params.title ~= state.title then
    state.title = params.title
    local first = api.nvim_buf_get_lines(state.bufnr, 0, 1, false)[1] or ''
    if first:sub(1, 2) == '# ' then
      api.nvim_buf_set_lines(state.bufnr, 0, 1, false, { '# ' .. params.title })
      vim.bo[state.bufnr].modified = false
    end
  end
end

--- Attach lines of a file buffer to the current chat (visual :OpenLlmAsk); with a question,
--- send at once.
---@param src integer source buffer
---@param line1 integer first line (1-based)
---@param line2 integer last line (1-based)
---@param question string|nil
function M.ask(src, line1, line2, question)
  local name = api.nvim_buf_get_name(src)
  if name == '' or vim.bo[src].buftype ~= '' then
    vim.notify('open_llm: :OpenLlmAsk works on a file buffer', vim.log.levels.WARN)
    return
  end
  local last = api.nvim_buf_get_lines(src, line2 - 1, line2, false)[1] or ''
  local attachment = {
    uri = vim.uri_from_bufnr(src),
    range = {
      start = { line = line1 - 1, character = 0 },
      ['end'] = { line = line2 - 1, character = vim.str_utfindex(last, 'utf-16') },
    },
  }
  attachment.label = attachment_label({ path = name, range = attachment.range })
  M.open_current(function(state)
    table.insert(state.attachments, attachment)
    if question and vim.trim(question) ~= '' then
      local row = sep_row(state)
      api.nvim_buf_set_lines(state.bufnr, row + 1, -1, false, split_lines(question))
      M.send(state.bufnr)
    else
      place_separator(state, sep_row(state))
      vim.notify('open_llm: selection attached; type your question and send', vim.log.levels.INFO)
    end
  end)
end

return M
