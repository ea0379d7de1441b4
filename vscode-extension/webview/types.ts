export type { MessageView, Sampling, TurnResult, ViewState } from "../src/chat/messages";
export type { PendingRequest } from "../src/chat/messenger";
