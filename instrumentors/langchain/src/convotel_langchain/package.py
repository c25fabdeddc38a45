_instruments = ("langchain-core >= 0.3",)

TRACER_NAME = "convotel_langchain"
