module gobuildkey.test/joinpath

go 1.19
