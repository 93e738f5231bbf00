# frozen_string_literal: true

module AcidicJob
  VERSION = "0.8.0"
end
